import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Test support: NSS's software token (softoken, `libsoftokn3.so` from Debian's libnss3) as a
 * second real PKCS#11 implementation beside SoftHSM2. Each token is its own NSS database
 * (cert9.db, key4.db) in a folder; the module learns them only from the C_Initialize library
 * parameters, once per process, so every token a test wants is declared up front.
 */

/** Where Debian's libnss3 puts the softoken module. */
export const NSS_SOFTOKEN_CANDIDATES = [
  '/usr/lib/x86_64-linux-gnu/libsoftokn3.so',
  '/usr/lib/aarch64-linux-gnu/libsoftokn3.so',
  '/usr/lib64/libsoftokn3.so',
  '/usr/lib/libsoftokn3.so',
];

/** The NSS softoken module path, or undefined when libnss3 is not installed. */
export function findNssSoftokenModule(): string | undefined {
  return NSS_SOFTOKEN_CANDIDATES.find((p) => existsSync(p));
}

export interface NssTokenSpec {
  /** The token label (softoken's tokenDescription, at most 32 bytes). */
  readonly label: string;
  /** The user PIN set at creation (C_InitPIN after the empty-PIN SO login of a new database). */
  readonly pin: string;
}

export interface NssSoftoken {
  readonly module: string;
  readonly dir: string;
  /** For Pkcs11HsmOptions.libraryParameters / `hsm.libraryParameters`. */
  readonly libraryParameters: string;
  /** Lists a token's secret key labels from another process, as an operator would. */
  listObjectLabels(label: string, pin: string): string[];
  cleanup(): void;
}

/** Slot ids for the declared tokens (softoken numbers user slots from 4; 1 and 2 are its own). */
const FIRST_SLOT = 4;

/**
 * Library parameters declaring one database token per spec. `tokens=<...>` replaces softoken's
 * default "NSS Certificate DB" slot; no secmod.db (noModDB), no cert/key prefixes.
 */
export function nssLibraryParameters(dir: string, labels: readonly string[]): string {
  const tokens = labels.map(
    (label, i) =>
      `0x${(FIRST_SLOT + i).toString(16)}=[configdir='sql:${join(dir, `t${i}`)}' certPrefix='' keyPrefix='' tokenDescription='${label}']`,
  );
  return `configdir='sql:${join(dir, 't0')}' certPrefix='' keyPrefix='' secmod='' flags='noModDB' tokens=<${tokens.join(' ')}>`;
}

/**
 * Makes a temp folder with one NSS database per token and sets each token's user PIN, in a child
 * process (the module's parameters are fixed per process at C_Initialize, and this process must
 * stay free to initialise it with the same parameters). Throws when libnss3 is not installed.
 */
export function createNssSoftoken(tokens: readonly NssTokenSpec[], prefix = 'keygate-nss-'): NssSoftoken {
  const module = findNssSoftokenModule();
  if (module === undefined)
    throw new Error('NSS softoken (libsoftokn3.so, Debian package libnss3) is not installed');
  for (const t of tokens) {
    if (Buffer.byteLength(t.label) > 32 || /['\]>]/.test(t.label))
      throw new Error(`bad token label ${t.label}`);
  }
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tokens.forEach((_, i) => {
    mkdirSync(join(dir, `t${i}`));
  });
  const libraryParameters = nssLibraryParameters(
    dir,
    tokens.map((t) => t.label),
  );
  // Operator actions run in a child process: the module's parameters are fixed per process at
  // C_Initialize, and pkcs11-tool cannot pass them (softoken 3.87 refuses C_Initialize(NULL) with
  // CKR_ARGUMENTS_BAD and does not read NSS_LIB_PARAMS).
  const child = (op: ChildOp): string =>
    execFileSync(process.execPath, ['-e', CHILD_SCRIPT], {
      env: {
        ...process.env,
        KG_NSS_OP: JSON.stringify({ pkcs11js: PKCS11JS, module, libraryParameters, ...op }),
      },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  child({ op: 'init', tokens });
  return {
    module,
    dir,
    libraryParameters,
    listObjectLabels(label, pin) {
      return JSON.parse(child({ op: 'list', label, pin })) as string[];
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

type ChildOp = { op: 'init'; tokens: readonly NssTokenSpec[] } | { op: 'list'; label: string; pin: string };

const PKCS11JS = createRequire(import.meta.url).resolve('pkcs11js');

/**
 * init: a fresh database has no password, so the SO logs in with an empty PIN and C_InitPIN sets
 * the user PIN (what `certutil -N` does). list: the labels of the token's secret keys, as JSON.
 */
const CHILD_SCRIPT = `
const a = JSON.parse(process.env.KG_NSS_OP);
const pkcs11js = require(a.pkcs11js);
const lib = new pkcs11js.PKCS11();
lib.load(a.module);
lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK, libraryParameters: a.libraryParameters });
const slots = lib.C_GetSlotList(true);
const open = (label) => {
  const slot = slots.find((s) => lib.C_GetTokenInfo(s).label.trimEnd() === label);
  if (!slot) throw new Error('no slot for ' + label);
  return lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
};
if (a.op === 'init') {
  for (const t of a.tokens) {
    const s = open(t.label);
    lib.C_Login(s, pkcs11js.CKU_SO, '');
    lib.C_InitPIN(s, t.pin);
    lib.C_Logout(s);
    lib.C_CloseSession(s);
  }
} else {
  const s = open(a.label);
  lib.C_Login(s, pkcs11js.CKU_USER, a.pin);
  lib.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }]);
  const hs = lib.C_FindObjects(s, 10000);
  lib.C_FindObjectsFinal(s);
  const labels = hs.map((h) => lib.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_LABEL }])[0].value.toString());
  process.stdout.write(JSON.stringify(labels));
}
lib.C_Finalize();
`;
