/**
 * Signs audit checkpoints. The file-key adapter (adapters/audit/key-file-signer.ts) holds an
 * Ed25519 key in memory; an HSM-backed signer can implement the same port later.
 */
export interface AuditVerifyKey {
  /** Stable id of the key, written in each checkpoint. */
  readonly keyId: string;
  verify(data: Uint8Array, signature: Uint8Array): boolean;
}

export interface AuditSigner extends AuditVerifyKey {
  sign(data: Uint8Array): Promise<Uint8Array>;
}
