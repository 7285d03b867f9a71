import { execFileSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DestinationStream } from 'pino';

/**
 * Test support: a private SoftHSM2 token directory, its tokens, and log capture. Also used by the
 * repository's e2e suites, benchmarks and dev stack (`@keygate/gateway/testing/softhsm`).
 */

/** Where Debian's softhsm2 package puts the PKCS#11 module. */
export const SOFTHSM_MODULE_CANDIDATES = [
  '/usr/lib/softhsm/libsofthsm2.so',
  '/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so',
  '/usr/local/lib/softhsm/libsofthsm2.so',
];

/** The SoftHSM2 PKCS#11 module path, or undefined when SoftHSM2 is not installed. */
export function findSoftHsmModule(): string | undefined {
  return SOFTHSM_MODULE_CANDIDATES.find((p) => existsSync(p));
}

export const SOFTHSM_MODULE: string = findSoftHsmModule() ?? '/usr/lib/softhsm/libsofthsm2.so';

/** Writes `dir`/softhsm2.conf for a private token store in `dir`/tokens; returns the conf's path. */
export function writeSoftHsmConf(dir: string): string {
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { recursive: true });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(
    conf,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
  );
  return conf;
}

/** Initialises a token in the store of `conf`; SoftHSM2 puts it in a random slot: find it by label. */
export function initSoftHsmToken(conf: string, label: string, pin: string, soPin: string): void {
  execFileSync(
    'softhsm2-util',
    ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin],
    {
      env: { ...process.env, SOFTHSM2_CONF: conf },
      stdio: 'ignore',
    },
  );
}

export interface SoftHsmDir {
  readonly dir: string;
  readonly conf: string;
  /** Environment for a process that should load the module with this token directory. */
  readonly env: Record<string, string>;
  /** Initialises a token with `label` and user PIN `pin` (SO PIN "so-" + pin). */
  addToken(label: string, pin: string): void;
  /**
   * Moves a token's folder out of the token directory, as when its storage is briefly unavailable
   * (an unmounted volume, a network HSM failing over); the returned function puts it back.
   */
  hideToken(label: string): () => void;
  /** Deletes a secret key object by label from another process (pkcs11-tool), outside keygate. */
  deleteObject(label: string, pin: string, objectLabel: string): void;
  /** Changes a token's user PIN from another process, as an operator would with pkcs11-tool. */
  changePin(label: string, pin: string, newPin: string): void;
  /** Lists the object labels of a token, as an operator would with pkcs11-tool. */
  listObjectLabels(label: string, pin: string): string[];
  cleanup(): void;
}

/**
 * Makes a temp SoftHSM2 directory and points this process's SOFTHSM2_CONF at it (the module reads
 * it at C_Initialize, so create this before any Pkcs11Hsm in the process).
 */
export function createSoftHsmDir(prefix = 'keygate-softhsm-'): SoftHsmDir {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const conf = writeSoftHsmConf(dir);
  process.env.SOFTHSM2_CONF = conf;
  const env = { SOFTHSM2_CONF: conf };
  /** Runs pkcs11-tool on this token directory, as an operator would from another process. */
  const pkcs11Tool = (args: string[]): string =>
    execFileSync('pkcs11-tool', ['--module', SOFTHSM_MODULE, ...args], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  return {
    dir,
    conf,
    env,
    addToken(label, pin) {
      initSoftHsmToken(conf, label, pin, `so-${pin}`);
    },
    hideToken(label) {
      const tokens = join(dir, 'tokens');
      // token.object holds the label padded to 32 bytes with spaces (PKCS#11 CK_TOKEN_INFO).
      const padded = Buffer.from(label.padEnd(32, ' '));
      const folder = readdirSync(tokens).find((f) => {
        const file = join(tokens, f, 'token.object');
        return existsSync(file) && readFileSync(file).includes(padded);
      });
      if (folder === undefined) throw new Error(`no token folder for ${label}`);
      const hidden = join(dir, `hidden-${folder}`);
      renameSync(join(tokens, folder), hidden);
      return () => renameSync(hidden, join(tokens, folder));
    },
    deleteObject(label, pin, objectLabel) {
      pkcs11Tool([
        '--token-label',
        label,
        '--login',
        '--pin',
        pin,
        '--delete-object',
        '--type',
        'secrkey',
        '--label',
        objectLabel,
      ]);
    },
    changePin(label, pin, newPin) {
      pkcs11Tool(['--token-label', label, '--login', '--pin', pin, '--change-pin', '--new-pin', newPin]);
    },
    listObjectLabels(label, pin) {
      const out = pkcs11Tool(['--token-label', label, '--login', '--pin', pin, '--list-objects']);
      return [...out.matchAll(/label:\s+(\S+)/g)].map((m) => m[1] ?? '');
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A pino destination that keeps every line, parsed. */
export function captureLines(): { stream: DestinationStream; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return {
    lines,
    stream: {
      write(msg: string) {
        for (const l of msg.split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      },
    },
  };
}

/** The attributes of keygate's root-key objects, for tools that make comparable keys (the bench's Go peer). */
export { keyTemplate } from '../adapters/pkcs11/key-object.js';
