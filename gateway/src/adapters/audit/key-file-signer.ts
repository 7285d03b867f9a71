import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { configError } from '@keygate/shared/config';
import { shortHash } from '@keygate/shared/crypto';
import type { AuditSigner, AuditVerifyKey } from '../../core/audit/audit-signer.js';

/**
 * Checkpoint signatures with an Ed25519 key held in memory (node:crypto). The key id is
 * `ed25519:` + the first 16 hex digits of SHA-256 of the public key's SPKI DER.
 * An HSM-backed AuditSigner can replace this later without changing the log format.
 */
export class KeyFileAuditSigner implements AuditSigner {
  readonly keyId: string;
  readonly #privateKey: KeyObject;
  readonly #verifyKey: AuditVerifyKey;

  private constructor(privateKey: KeyObject) {
    this.#privateKey = privateKey;
    this.#verifyKey = auditVerifyKey(createPublicKey(privateKey));
    this.keyId = this.#verifyKey.keyId;
  }

  /** From a PEM PKCS#8 Ed25519 private key; `source` names it in errors. */
  static fromPem(pem: string, source = 'audit signing key'): KeyFileAuditSigner {
    let key: KeyObject;
    try {
      key = createPrivateKey({ key: pem, format: 'pem' });
    } catch (cause) {
      throw configError(source, [{ path: '', expected: 'a PEM PKCS#8 Ed25519 private key' }], cause);
    }
    if (key.asymmetricKeyType !== 'ed25519') {
      throw configError(source, [{ path: '', expected: 'an Ed25519 private key' }]);
    }
    return new KeyFileAuditSigner(key);
  }

  /** Reads the key file; errors name the file, never the key. */
  static async fromFile(path: string): Promise<KeyFileAuditSigner> {
    let pem: string;
    try {
      pem = await readFile(path, 'utf8');
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code ?? 'error';
      throw configError(path, [{ path: '', expected: `a readable audit signing key file (${code})` }], cause);
    }
    return KeyFileAuditSigner.fromPem(pem, path);
  }

  async sign(data: Uint8Array): Promise<Uint8Array> {
    return sign(null, data, this.#privateKey);
  }

  verify(data: Uint8Array, signature: Uint8Array): boolean {
    return this.#verifyKey.verify(data, signature);
  }

  /** The public key as PEM SPKI, for `audit verify` on machines without the private key. */
  publicKeyPem(): string {
    return createPublicKey(this.#privateKey).export({ format: 'pem', type: 'spki' }).toString();
  }
}

/** A verify-only key from a public (SPKI) or private PEM, or a KeyObject. */
export function auditVerifyKey(key: string | KeyObject): AuditVerifyKey {
  const publicKey = typeof key !== 'string' && key.type === 'public' ? key : createPublicKey(key);
  if (publicKey.asymmetricKeyType !== 'ed25519') throw new TypeError('audit keys are Ed25519');
  const keyId = `ed25519:${shortHash(publicKey.export({ format: 'der', type: 'spki' }))}`;
  return {
    keyId,
    verify: (data, signature) => verify(null, data, publicKey, signature),
  };
}

/** Writes a new Ed25519 PKCS#8 PEM key to `path` (mode 0600, never overwrites); returns its key id. */
export async function createAuditKeyFile(path: string): Promise<{ keyId: string; publicKeyPem: string }> {
  const { privateKey } = generateKeyPairSync('ed25519');
  const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  await writeFile(path, pem, { mode: 0o600, flag: 'wx' });
  const signer = KeyFileAuditSigner.fromPem(pem, path);
  return { keyId: signer.keyId, publicKeyPem: signer.publicKeyPem() };
}
