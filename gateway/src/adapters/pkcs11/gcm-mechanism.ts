import pkcs11js from 'pkcs11js';

export const IV_BYTES = 12;
export const TAG_BYTES = 16;

/** CKM_AES_GCM with a 96-bit IV, the AAD and a 128-bit tag (used on the main thread and in workers). */
export function gcm(iv: Buffer, aad: Uint8Array): pkcs11js.Mechanism {
  const params: pkcs11js.AesGCM = {
    type: pkcs11js.CK_PARAMS_AES_GCM,
    iv,
    aad: Buffer.from(aad.buffer, aad.byteOffset, aad.byteLength),
    ivBits: IV_BYTES * 8,
    tagBits: TAG_BYTES * 8,
  };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter: params };
}
