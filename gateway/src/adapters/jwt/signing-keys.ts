import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { configError } from '@keygate/shared/config';
import { KeygateError } from '@keygate/shared/errors';
import { calculateJwkThumbprint, type JWK } from 'jose';

/** One token signing key: the private half and its public JWK (kid = RFC 7638 thumbprint). */
export interface SigningKey {
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicJwk: Readonly<JWK>;
}

/**
 * Parses PEM PKCS#8 EC P-256 private keys (one per file). The first signs; all verify, so a
 * rollover lists the new key first and keeps the old one until its last token has expired.
 * Throws CONFIG_INVALID naming `sources[i]` (never the key) for a key that is not P-256.
 */
export async function loadSigningKeys(
  pems: readonly string[],
  sources: readonly string[] = [],
): Promise<SigningKey[]> {
  if (pems.length === 0) throw configProblem('at least one token signing key', 'tokens.signingKeyFiles');
  const keys: SigningKey[] = [];
  for (const [i, pem] of pems.entries()) {
    const where = sources[i] ?? `signing key ${i + 1}`;
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: pem, format: 'pem' });
    } catch (cause) {
      throw configProblem('a PEM PKCS#8 EC P-256 private key', where, cause);
    }
    if (
      privateKey.asymmetricKeyType !== 'ec' ||
      privateKey.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
    ) {
      throw configProblem('an EC P-256 private key (ES256)', where);
    }
    const publicKey = createPublicKey(privateKey);
    const full = publicKey.export({ format: 'jwk' });
    const base = { kty: 'EC', crv: 'P-256', x: String(full.x), y: String(full.y) };
    const kid = await calculateJwkThumbprint(base, 'sha256');
    if (keys.some((k) => k.kid === kid)) throw configProblem('each signing key listed once', where);
    keys.push({
      kid,
      privateKey,
      publicKey,
      publicJwk: Object.freeze({ ...base, kid, alg: 'ES256', use: 'sig' }),
    });
  }
  return keys;
}

/** Reads and parses signing key files (see loadSigningKeys); errors name the file. */
export async function readSigningKeyFiles(paths: readonly string[]): Promise<SigningKey[]> {
  const pems: string[] = [];
  for (const path of paths) {
    try {
      pems.push(await readFile(path, 'utf8'));
    } catch (cause) {
      throw configProblem(
        `a readable signing key file (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
        path,
        cause,
      );
    }
  }
  return loadSigningKeys(pems, paths);
}

/**
 * Writes a new EC P-256 PKCS#8 PEM signing key to `path` (mode 0600; never overwrites) and
 * returns its kid. For `keygate-gateway token-key create` and tests.
 */
export async function createSigningKeyFile(path: string): Promise<{ kid: string }> {
  const pem = generateSigningKeyPem();
  await writeFile(path, pem, { mode: 0o600, flag: 'wx' });
  const [key] = await loadSigningKeys([pem], [path]);
  if (key === undefined) throw new KeygateError('INTERNAL_ERR');
  return { kid: key.kid };
}

/** A new EC P-256 private key as PEM PKCS#8. */
export function generateSigningKeyPem(): string {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
}

function configProblem(expected: string, where: string, cause?: unknown): KeygateError {
  return configError(where, [{ path: '', expected }], cause);
}
