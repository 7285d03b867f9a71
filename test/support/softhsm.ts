import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

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

export interface SoftHsmToken {
  /** Path of the softhsm2.conf to put in SOFTHSM2_CONF. */
  readonly conf: string;
  readonly module: string;
  readonly label: string;
  readonly pin: string;
  readonly soPin: string;
}

/**
 * Makes a private SoftHSM2 token store under `dir` (its own softhsm2.conf) and initialises a token
 * labelled `label`. SoftHSM2 moves a new token to a random slot: find it by label.
 */
export function createSoftHsmToken(
  dir: string,
  label = 'keygate',
  pin = '1234',
  soPin = '5678',
): SoftHsmToken {
  const module = findSoftHsmModule();
  if (!module) throw new Error('SoftHSM2 is not installed (apt-get install softhsm2)');
  const tokens = join(dir, 'tokens');
  mkdirSync(tokens, { recursive: true });
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(
    conf,
    `directories.tokendir = ${tokens}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`,
  );
  execFileSync(
    'softhsm2-util',
    ['--init-token', '--free', '--label', label, '--so-pin', soPin, '--pin', pin],
    {
      env: { ...process.env, SOFTHSM2_CONF: conf },
      stdio: 'ignore',
    },
  );
  return { conf, module, label, pin, soPin };
}
