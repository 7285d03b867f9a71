import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { findSoftHsmModule } from '#devstack/softhsm.js';

/** Why a memory-scan suite (a real gateway on SoftHSM2, /proc/self/mem) cannot run here, or false. */
export function memoryScanSkip(): string | false {
  if (findSoftHsmModule() === undefined) return 'SoftHSM2 not installed';
  return process.platform === 'linux' ? false : 'needs /proc/self/mem';
}

/**
 * A 32-byte secret that this process never holds in one piece: the first half `a` as is, the
 * second half only as `bMasked` = b XOR `mask`. Scanning for it builds no copy of it either.
 */
export interface SplitSecret {
  readonly a: Buffer;
  readonly bMasked: Buffer;
  readonly mask: Buffer;
}

/** Where a copy of the secret was found: its address and the mapping's name (or '[anon]'). */
export interface Hit {
  readonly address: string;
  readonly mapping: string;
}

const CHUNK = 8 << 20;

/**
 * Reads every readable mapping of this process (/proc/self/maps, /proc/self/mem) and returns each
 * place where `a` is followed by b, compared byte by byte as (bMasked[j] ^ mask[j]) so that b is
 * never assembled. Mappings the kernel refuses to read ([vvar], [vsyscall], guard pages) are
 * skipped. The read buffer is zeroed afterwards, since it may have held a copy.
 */
export function findSecret(s: SplitSecret): { hits: Hit[]; bytesScanned: number } {
  const half = s.a.length;
  const buf = Buffer.allocUnsafeSlow(CHUNK + 2 * half);
  const fd = openSync('/proc/self/mem', 'r');
  const hits: Hit[] = [];
  let bytesScanned = 0;
  try {
    for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
      if (m?.[3]?.[0] !== 'r') continue;
      const mapping = m[4] || '[anon]';
      if (/^\[(vvar|vvar_vclock|vsyscall)\]$/.test(mapping)) continue;
      const start = Number.parseInt(m[1] as string, 16);
      const end = Number.parseInt(m[2] as string, 16);
      // Chunks overlap by 2 halves - 1 bytes, so a copy across a chunk border is still seen.
      for (let at = start; at < end; at += CHUNK) {
        let n: number;
        try {
          n = readSync(fd, buf, 0, Math.min(CHUNK + 2 * half - 1, end - at), at);
        } catch {
          break;
        }
        bytesScanned += Math.min(n, CHUNK);
        for (let i = buf.indexOf(s.a); i >= 0 && i + 2 * half <= n; i = buf.indexOf(s.a, i + 1)) {
          let same = true;
          for (let j = 0; j < half && same; j++) {
            same = buf[i + half + j] === ((s.bMasked[j] as number) ^ (s.mask[j] as number));
          }
          if (same) hits.push({ address: (at + i).toString(16), mapping });
        }
      }
    }
  } finally {
    closeSync(fd);
    buf.fill(0);
  }
  return { hits, bytesScanned };
}
