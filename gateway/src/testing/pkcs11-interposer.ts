import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pkcs11js from 'pkcs11js';

/**
 * Test support: the PKCS#11 fault and quirk interposer (`pkcs11-interposer/interposer.c`), a module
 * that forwards every call to a real module (SoftHSM2) and, driven by a control file it re-reads
 * when the file changes, emulates the Luna-FIPS and CloudHSM GCM IV conventions, returns any CKR_*
 * from any function, adds latency, hangs calls and hides objects. A test tool: the release build
 * leaves src/testing/ out, and the images copy only that build. docs/development.md.
 */

/** Where the source lives: gateway/src/testing/pkcs11-interposer/ (from src/testing or dist/testing). */
const SOURCE = fileURLToPath(new URL('../../src/testing/pkcs11-interposer/interposer.c', import.meta.url));

/** GCM IV conventions: `host` forwards the caller's IV; the others generate it and append it. */
export type InterposerGcmMode = 'host' | 'luna-fips' | 'cloudhsm';

/** The IV the interposer generates and appends in each emulated mode. */
export const INTERPOSER_GCM_IV_BYTES: Readonly<Record<Exclude<InterposerGcmMode, 'host'>, number>> = {
  'luna-fips': 16,
  cloudhsm: 12,
};

/** One or more PKCS#11 function names (`C_Encrypt`), or `*` for every function but C_Finalize. */
export type InterposerFunctions = string | readonly string[];

interface Window {
  /** Matching calls the rule applies to (default: every one). */
  readonly count?: number;
  /** Matching calls let through before the rule applies (e.g. fail the 3rd call: skip 2, count 1). */
  readonly skip?: number;
  /** The rule ends this many ms after `set()` (default: never). */
  readonly forMs?: number;
}

export interface InterposerFault extends Window {
  readonly fn: InterposerFunctions;
  /** A CKR_* name pkcs11js knows (`CKR_DEVICE_ERROR`) or its number. */
  readonly rv: string | number;
  /**
   * `before`: return without calling the real module; `after`: call it, then return `rv` (the
   * default for single-part and Final crypto calls, so the module's operation ends as on a real
   * failure; `before` for everything else).
   */
  readonly when?: 'before' | 'after';
}

export interface InterposerDelay extends Window {
  readonly fn: InterposerFunctions;
  readonly ms: number;
}

export interface InterposerHang extends Window {
  readonly fn: InterposerFunctions;
  /** The call goes on after this long even if the control does not change (default 300 s). */
  readonly maxMs?: number;
}

/** What the interposer does; each `set()` replaces the whole control, and counts restart. */
export interface InterposerControl {
  readonly gcm?: InterposerGcmMode;
  /**
   * `strict`: refuse CKM_AES_GCM parameters whose ulIvBits is not ulIvLen * 8 (encrypt and decrypt),
   * as a token that checks the PKCS#11 v2.40 field would. pkcs11js leaves ulIvBits uninitialised
   * with CK_PARAMS_AES_GCM; CK_PARAMS_GCM and CK_PARAMS_AES_GCM_v240 set it. Default `ignore`.
   */
  readonly gcmIvBits?: 'ignore' | 'strict';
  readonly fail?: readonly InterposerFault[];
  readonly delay?: readonly InterposerDelay[];
  /** A hung call blocks until the control changes (any `set()`/`clear()`) or `maxMs` passes. */
  readonly hang?: readonly InterposerHang[];
  /** C_FindObjects finds nothing (an HA failover): `true` until the next set(), or a window. */
  readonly hide?: true | Window;
}

/** One line of the events file: what the interposer did, when. */
export interface InterposerEvent {
  readonly atMs: number;
  /** `fail`, `delay`, `hang`, `hide`, `gcm-init`, `gcm-refused`, `control`, `control-error`. */
  readonly kind: string;
  /** The rest of the line, e.g. `C_Encrypt rv=0x30 after`. */
  readonly detail: string;
}

export interface Interposer {
  /** Load this with pkcs11js (or give it as `hsm.module`) in place of the real module. */
  readonly modulePath: string;
  /**
   * The same configuration as environment variables, for a process that loads the cached module
   * directly; `modulePath` needs none (a `<modulePath>.conf` next to it says where everything is).
   */
  readonly env: Record<string, string>;
  readonly controlPath: string;
  readonly eventsPath: string;
  /** Replaces the control: the module re-reads it on its next call (and releases hung calls). */
  set(control: InterposerControl): void;
  /** Back to plain forwarding (`set({})`). */
  clear(): void;
  /** What the module did so far (see InterposerEvent), optionally only one kind. */
  events(kind?: string): InterposerEvent[];
  /** Clears the control (releasing hung calls) and removes the instance's files. */
  close(): void;
}

export interface StartInterposerOptions {
  /** The real PKCS#11 module, e.g. SOFTHSM_MODULE. */
  readonly target: string;
  readonly control?: InterposerControl;
}

/** pkcs11js's copy of the PKCS#11 v2.40 headers (a dependency of the gateway, so always there). */
function headerDir(): string {
  const main = createRequire(import.meta.url).resolve('pkcs11js');
  const dir = join(dirname(main), 'includes', 'pkcs11');
  if (!existsSync(join(dir, 'pkcs11.h'))) throw new Error(`PKCS#11 headers not found in ${dir}`);
  return dir;
}

function cacheDir(): string {
  // The cache the other built test tools use (test/support/go-build.ts).
  const dir = process.env.KEYGATE_TOOLS_CACHE ?? join(homedir(), '.cache', 'keygate-tools');
  try {
    mkdirSync(dir, { recursive: true });
    return dir;
  } catch {
    const fallback = join(tmpdir(), 'keygate-tools');
    mkdirSync(fallback, { recursive: true });
    return fallback;
  }
}

/**
 * Builds the interposer with the system gcc, once per hash of its source and headers, into
 * ${KEYGATE_TOOLS_CACHE:-~/.cache/keygate-tools}/interposer-<hash>.so; returns that path.
 */
export function buildInterposer(): string {
  return gccBuild('interposer', SOURCE, '.so', ['-shared', '-fPIC', '-fvisibility=hidden', '-lpthread']);
}

/**
 * Builds `probe.c`, a PKCS#11 client in C for what pkcs11js cannot do (NULL size queries,
 * multi-part calls): `probe <module> <token label> <pin> <iv bytes, 0 for a host IV>`.
 */
export function buildInterposerProbe(): string {
  return gccBuild('interposer-probe', join(dirname(SOURCE), 'probe.c'), '', []);
}

function gccBuild(name: string, source: string, suffix: string, flags: readonly string[]): string {
  const headers = headerDir();
  const hash = createHash('sha256').update(flags.join(' ')).update(readFileSync(source));
  for (const h of ['pkcs11.h', 'pkcs11t.h', 'pkcs11f.h']) hash.update(readFileSync(join(headers, h)));
  const out = join(cacheDir(), `${name}-${hash.digest('hex').slice(0, 16)}${suffix}`);
  if (existsSync(out)) return out;
  // Build beside it and rename, so tests building at once never load a half-written file.
  const tmp = `${out}.${process.pid}.${Date.now()}.tmp`;
  try {
    execFileSync(
      'gcc',
      [
        '-O2',
        '-std=gnu11',
        '-Wall',
        '-Wextra',
        '-Werror',
        `-I${headers}`,
        '-o',
        tmp,
        source,
        '-ldl',
        ...flags,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    renameSync(tmp, out);
  } catch (err) {
    rmSync(tmp, { force: true });
    const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`building ${name} with gcc failed: ${stderr || String(err)}`);
  }
  return out;
}

/** The CKR_* number for a name pkcs11js knows, or the number itself. */
function ckrValue(rv: string | number): number {
  if (typeof rv === 'number') return rv;
  const v = (pkcs11js as unknown as Record<string, unknown>)[rv];
  if (!rv.startsWith('CKR_') || typeof v !== 'number') throw new Error(`unknown return value ${rv}`);
  return v;
}

function fnSpec(fn: InterposerFunctions): string {
  const list = typeof fn === 'string' ? [fn] : [...fn];
  for (const f of list)
    if (f !== '*' && !/^C_[A-Za-z]+$/.test(f)) throw new Error(`not a PKCS#11 function: ${f}`);
  if (list.length === 0) throw new Error('no function named');
  return list.join(',');
}

function windowArgs(w: Window, now: number): string {
  let s = '';
  if (w.count !== undefined) s += ` count=${Math.max(0, Math.floor(w.count))}`;
  if (w.skip !== undefined) s += ` skip=${Math.max(0, Math.floor(w.skip))}`;
  if (w.forMs !== undefined) s += ` until=${now + Math.max(0, Math.floor(w.forMs))}`;
  return s;
}

/** The control file's text for `control` (the format is in interposer.c's header comment). */
export function interposerControlText(control: InterposerControl, now = Date.now()): string {
  const lines = ['# keygate PKCS#11 interposer control (written by pkcs11-interposer.ts)'];
  lines.push(`gcm ${control.gcm ?? 'host'}`);
  lines.push(`gcm-iv-bits ${control.gcmIvBits ?? 'ignore'}`);
  for (const h of control.hang ?? []) {
    const max = h.maxMs !== undefined ? ` max_ms=${Math.floor(h.maxMs)}` : '';
    lines.push(`hang ${fnSpec(h.fn)}${windowArgs(h, now)}${max}`);
  }
  for (const d of control.delay ?? [])
    lines.push(`delay ${fnSpec(d.fn)} ${Math.floor(d.ms)}${windowArgs(d, now)}`);
  for (const f of control.fail ?? []) {
    const when = f.when ? ` when=${f.when}` : '';
    lines.push(`fail ${fnSpec(f.fn)} 0x${ckrValue(f.rv).toString(16)}${windowArgs(f, now)}${when}`);
  }
  if (control.hide) lines.push(`hide${control.hide === true ? '' : windowArgs(control.hide, now)}`);
  return `${lines.join('\n')}\n`;
}

/**
 * Starts an interposer instance in front of `target`: its own copy of the module (so several
 * instances in one process keep separate state), a control file and an events file.
 */
export function startInterposer(options: StartInterposerOptions): Interposer {
  const built = buildInterposer();
  const dir = mkdtempSync(join(tmpdir(), 'keygate-interposer-'));
  const modulePath = join(dir, 'libkeygate-interposer.so');
  const controlPath = join(dir, 'control');
  const eventsPath = join(dir, 'events');
  copyFileSync(built, modulePath);
  writeFileSync(
    `${modulePath}.conf`,
    `target=${options.target}\ncontrol=${controlPath}\nevents=${eventsPath}\n`,
  );
  let writes = 0;
  const set = (control: InterposerControl) => {
    const tmp = `${controlPath}.${++writes}.tmp`;
    writeFileSync(tmp, interposerControlText(control));
    renameSync(tmp, controlPath); // a new inode: the module sees the change even within one mtime tick
  };
  set(options.control ?? {});
  return {
    modulePath,
    env: {
      KEYGATE_INTERPOSER_TARGET: options.target,
      KEYGATE_INTERPOSER_CONTROL: controlPath,
      KEYGATE_INTERPOSER_EVENTS: eventsPath,
    },
    controlPath,
    eventsPath,
    set,
    clear: () => set({}),
    events(kind) {
      if (!existsSync(eventsPath)) return [];
      const all = readFileSync(eventsPath, 'utf8')
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => {
          const [at = '0', k = '', ...rest] = l.split(' ');
          return { atMs: Number(at), kind: k, detail: rest.join(' ') };
        });
      return kind === undefined ? all : all.filter((e) => e.kind === kind);
    },
    close() {
      if (!existsSync(dir)) return;
      set({});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Removes cached builds other than the current one (housekeeping; tests need not call it). */
export function pruneInterposerCache(): void {
  const current = buildInterposer();
  const dir = dirname(current);
  for (const f of readdirSync(dir)) {
    if (f.startsWith('interposer-') && join(dir, f) !== current) rmSync(join(dir, f), { force: true });
  }
}
