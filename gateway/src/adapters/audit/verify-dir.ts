import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { type AuditAnchor, anchorSignatureProblem } from '../../core/audit/audit-anchor.js';
import type { AuditVerifyKey } from '../../core/audit/audit-signer.js';
import {
  type AuditVerifyReport,
  ChainVerifier,
  type ChainVerifyOptions,
} from '../../core/audit/chain-verifier.js';
import { listAuditFiles } from './audit-files.js';

export interface VerifyAuditOptions extends ChainVerifyOptions {
  /** The log must still hold the record this anchor names, with its hash and boot (and it must be signed). */
  readonly anchor?: AuditAnchor | undefined;
}

/**
 * Verifies every audit file of `dir` in seq order against the chain and the signing keys.
 * Returns ok, or the first problem with its file and line (see ChainVerifier). A file whose name
 * says it starts at another seq than its first record also counts as a removal or reorder.
 */
export function verifyAuditDir(
  dir: string,
  publicKeys: readonly AuditVerifyKey[],
  opts: VerifyAuditOptions = {},
): Promise<AuditVerifyReport> {
  return withVerifier(publicKeys, opts, async (verifier) => {
    // A folder that is gone is an erased log: reported as `empty`, like one whose files are.
    const files = await listAuditFiles(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [];
      throw err;
    });
    for (const file of files) {
      const before = verifier.lastSeq;
      const bytes = await readFile(join(dir, file.name));
      if (bytes.length > 0 && before > 0 && file.startSeq !== before + 1) {
        const kind = file.startSeq > before + 1 ? 'removed' : 'reordered';
        return {
          ...verifier.finish(),
          ok: false,
          problem: {
            kind,
            file: file.name,
            line: 1,
            message: `file should start at seq ${before + 1} but its name says ${file.startSeq}`,
          },
        };
      }
      if (verifier.addFile(file.name, bytes) !== undefined) break;
    }
    return verifier.finish();
  });
}

/**
 * Verifies one file of record lines as a chain: a copy of the log shipped from the stream
 * (`audit.stdout`), with the log lines around it removed (e.g. `grep '^{"seq":'`).
 */
export function verifyAuditCopy(
  file: string,
  publicKeys: readonly AuditVerifyKey[],
  opts: VerifyAuditOptions = {},
): Promise<AuditVerifyReport> {
  return withVerifier(publicKeys, opts, async (verifier) => {
    verifier.addFile(basename(file), await readFile(file));
    return verifier.finish();
  });
}

/** Runs `feed` on a verifier that also checks the anchor (its signature first, then its head). */
async function withVerifier(
  keys: readonly AuditVerifyKey[],
  opts: VerifyAuditOptions,
  feed: (verifier: ChainVerifier) => Promise<AuditVerifyReport>,
): Promise<AuditVerifyReport> {
  const a = opts.anchor;
  const verifier = new ChainVerifier(
    keys,
    a === undefined
      ? opts
      : { ...opts, expect: { seq: a.seq, hash: a.hash, boot: a.boot, source: 'the anchor' } },
  );
  const why = a === undefined ? undefined : anchorSignatureProblem(a, keys);
  if (why === undefined) return feed(verifier);
  const problem = { kind: 'bad-anchor' as const, file: '(anchor)', line: 0, message: `the anchor is ${why}` };
  return { ...verifier.finish(), ok: false, problem };
}
