/**
 * The HSM port: AES-256 key objects, one per CRK version, that never leave the device.
 * Adapters: PKCS#11 (adapters/pkcs11) and the development-only software backend (adapters/software).
 */

/** Names one key object: a version of a CRK of an instance. */
export interface KeyObjectRef {
  readonly instance: string;
  readonly crkId: string;
  readonly versionId: string;
}

/** AES-256-GCM output, with the IV used (the host's, or the one the module generated and appended). */
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
  readonly sessions?: {
    readonly open: number;
    readonly busy: number;
    readonly waiting: number;
    /** Sessions given up because their call hung, whose call has not returned yet. */
    readonly hung?: number;
  };
  /** Present while key objects the store lists as live cannot be found, and for the step counts. */
  readonly recovery?: HsmRecoveryStatus;
}

/** Recovery from key objects the HSM could not find although the store says they are live. */
export interface HsmRecoveryStatus {
  /** Labels of the objects still missing (at most a few; `missingCount` is the total). */
  readonly missing: readonly string[];
  readonly missingCount: number;
  /** Rounds tried in the current episode (0 when none is running). */
  readonly attempt: number;
  /** Milliseconds until the next round, when one is scheduled. */
  readonly nextTryInMs?: number | undefined;
  /** Recovery steps run since start, by step and outcome (a monotonic count each). */
  readonly steps: readonly { readonly step: string; readonly outcome: string; readonly count: number }[];
}

export interface Hsm {
  /**
   * The IV length of what encrypt() returns: 12, or 16 for a module that generates and appends
   * 16-byte IVs (Luna in FIPS mode). The wrapped DEK's header announces it before encryption.
   */
  readonly ivBytes: number;
  /** Creates a new sensitive, non-extractable AES-256 key object for `ref`. */
  generateKey(ref: KeyObjectRef): Promise<void>;
  /**
   * AES-256-GCM encrypts under `ref`. HSM_KEY_OBJECT_MISSING when no object is found: only the
   * store can say whether the key was destroyed, so the adapter never answers KEY_DELETED_ERR.
   */
  encrypt(ref: KeyObjectRef, plaintext: Uint8Array, aad: Uint8Array): Promise<GcmSealed>;
  /**
   * AES-256-GCM decrypts; a wrong tag/aad is UNPROCESSABLE_CIPHERTEXT_ERR, no object
   * HSM_KEY_OBJECT_MISSING. The caller zeroes the result.
   */
  decrypt(ref: KeyObjectRef, sealed: GcmSealed, aad: Uint8Array): Promise<Buffer>;
  /**
   * The store says `ref` is live, yet the HSM reported its object missing: a device fault. Starts
   * recovery (or joins the one running) and reports it in status(); returns at once.
   */
  reportMissing(ref: KeyObjectRef): void;
  /** Deletes every object of `ref` (and stops expecting it); no error when none exists. */
  destroyKey(ref: KeyObjectRef): Promise<void>;
  status(): HsmStatus;
  close(): Promise<void>;
}

/** The label of a key object, so operators find it with `pkcs11-tool --list-objects`. */
export function objectLabel(ref: KeyObjectRef): string {
  return `keygate:${ref.instance}:${ref.crkId}:${ref.versionId}`;
}
