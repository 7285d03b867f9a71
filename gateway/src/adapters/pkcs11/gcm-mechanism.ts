import pkcs11js from 'pkcs11js';

export const IV_BYTES = 12;
export const TAG_BYTES = 16;

/**
 * CKM_AES_GCM with a 96-bit IV, the AAD and a 128-bit tag (used on the main thread and in workers).
 * The PKCS#11 2.40 CK_GCM_PARAMS (with ulIvBits): NSS softoken refuses the older layout without it
 * (CKR_MECHANISM_PARAM_INVALID); SoftHSM2 takes both (docs/hsm.md, Differences found).
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
