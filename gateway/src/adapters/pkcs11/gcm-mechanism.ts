import pkcs11js from 'pkcs11js';

/** The IV keygate makes or asks for, unless the token appends one of another length. */
export const IV_BYTES = 12;
export const TAG_BYTES = 16;

/**
 * Where a GCM encryption's IV comes from (`hsm.gcmIv`, docs/hsm.md):
 * - `host`: 12 random bytes from the host CSPRNG, passed in (SoftHSM2, Luna outside FIPS mode).
 * - `token-random`: 12 bytes from the token's C_GenerateRandom, passed in by the host. Not IV
 *   generation inside the module (a FIPS-mode HSM may refuse it); kept for tokens whose RNG the
 *   operator prefers.
 * - `token-appended`: the module makes the IV itself; the host passes a zeroed IV buffer of the
 *   token's length and the module returns ciphertext || tag || IV (Luna in FIPS mode: 16 bytes;
 *   AWS CloudHSM: 12 bytes).
 */
export type GcmIvMode = 'host' | 'token-random' | 'token-appended';

export interface GcmIvSetting {
  readonly mode: GcmIvMode;
  /** The IV length: 12, or what the token appends (12 or 16) with `token-appended`. */
  readonly bytes: number;
}

export const HOST_IV: GcmIvSetting = Object.freeze({ mode: 'host', bytes: IV_BYTES });

/**
 * CKM_AES_GCM with the IV (its length in bits as ulIvBits), the AAD and a 128-bit tag, in the
 * PKCS#11 2.40 CK_GCM_PARAMS layout (`_v240`, with ulIvBits): NSS softoken refuses the older one
 * without it (CKR_MECHANISM_PARAM_INVALID); SoftHSM2 takes both (docs/hsm.md, Differences found).
 */
export function gcm(iv: Buffer, aad: Uint8Array): pkcs11js.Mechanism {
  const params: pkcs11js.AesGCM = {
    type: pkcs11js.CK_PARAMS_AES_GCM_v240,
    iv,
    aad: Buffer.from(aad.buffer, aad.byteOffset, aad.byteLength),
    ivBits: iv.length * 8,
    tagBits: TAG_BYTES * 8,
  };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter: params };
}

/**
 * Splits what C_Encrypt returned in `token-appended` mode: ciphertext || tag || IV. HSM_ERROR when
 * the length is not that (the token did not append an IV: the setting does not fit this HSM).
 */
export function splitAppended(
  out: Buffer,
  plaintextBytes: number,
  ivBytes: number,
): { iv: Buffer; ciphertext: Buffer; tag: Buffer } {
  if (out.length !== plaintextBytes + TAG_BYTES + ivBytes) {
    throw new GcmOutputError(
      `C_Encrypt returned ${out.length} bytes, expected ${plaintextBytes + TAG_BYTES + ivBytes} (ciphertext, tag and a ${ivBytes}-byte IV): hsm.gcmIv token-appended does not fit this token`,
    );
  }
  const tagAt = plaintextBytes;
  const ivAt = tagAt + TAG_BYTES;
  return {
    ciphertext: Buffer.from(out.subarray(0, tagAt)),
    tag: Buffer.from(out.subarray(tagAt, ivAt)),
    iv: Buffer.from(out.subarray(ivAt)),
  };
}

/** Encryption output of an unexpected shape (mapped to HSM_ERROR by the adapter). */
export class GcmOutputError extends Error {}
