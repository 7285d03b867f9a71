/**
 * The HSM port: AES-256 key objects, one per CRK version, that never leave the device.
 * Adapters: PKCS#11 (adapters/pkcs11) and the development-only software backend (adapters/soft).
 */

/** Names one key object: a version of a CRK of an instance. */
export interface KeyObjectRef {
  readonly instance: string;
  readonly crkId: string;
  readonly versionId: string;
}

/** AES-256-GCM output: the adapter picks the 12-byte IV (host random or HSM-generated). */
export interface GcmSealed {
  readonly iv: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
}

/** Health of the HSM as /readyz reports it. */
export interface HsmStatus {
  readonly backend: 'pkcs11' | 'software';
  readonly ready: boolean;
  /** Why it is not ready (or warnings when it is), in operator words. Never secrets. */
  readonly reasons: readonly string[];
  readonly sessions?: { readonly open: number; readonly busy: number; readonly waiting: number };
}

export interface Hsm {
  /** Creates a new sensitive, non-extractable AES-256 key object for `ref`. */
  generateKey(ref: KeyObjectRef): Promise<void>;
  /** AES-256-GCM encrypts under `ref`. KEY_DELETED_ERR when the object is gone. */
  encrypt(ref: KeyObjectRef, plaintext: Uint8Array, aad: Uint8Array): Promise<GcmSealed>;
  /** AES-256-GCM decrypts; a wrong tag/aad is UNPROCESSABLE_CIPHERTEXT_ERR. The caller zeroes the result. */
  decrypt(ref: KeyObjectRef, sealed: GcmSealed, aad: Uint8Array): Promise<Buffer>;
  /** Deletes every object of `ref`; no error when none exists. */
  destroyKey(ref: KeyObjectRef): Promise<void>;
  status(): HsmStatus;
  close(): Promise<void>;
}

/** The label of a key object, so operators find it with `pkcs11-tool --list-objects`. */
export function objectLabel(ref: KeyObjectRef): string {
  return `keygate:${ref.instance}:${ref.crkId}:${ref.versionId}`;
}
