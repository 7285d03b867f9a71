import { createCipheriv, createDecipheriv } from 'node:crypto';
import { KeygateError } from '../errors/index.js';
import type { Sealed } from './a256cbc-hs512.js';

/** Key, IV and tag sizes of AES-256-GCM as keygate uses it (96-bit IV, 128-bit tag). */
export const AES_256_GCM = { keyBytes: 32, ivBytes: 12, tagBytes: 16 } as const;

/** AES-256-GCM encryption with a 96-bit IV and a 128-bit tag. */
export function aes256GcmEncrypt(
  key: Uint8Array,
  iv: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Sealed {
  if (key.length !== AES_256_GCM.keyBytes) throw new RangeError('AES-256-GCM needs a 32-byte key');
  if (iv.length !== AES_256_GCM.ivBytes) throw new RangeError('AES-256-GCM needs a 12-byte IV');
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: AES_256_GCM.tagBytes });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/** AES-256-GCM decryption; any failure is UNPROCESSABLE_CIPHERTEXT_ERR. */
export function aes256GcmDecrypt(
  key: Uint8Array,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  aad: Uint8Array,
  tag: Uint8Array,
): Buffer {
  if (key.length !== AES_256_GCM.keyBytes) throw new RangeError('AES-256-GCM needs a 32-byte key');
  if (iv.length !== AES_256_GCM.ivBytes || tag.length !== AES_256_GCM.tagBytes) {
    throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { detail: { reason: 'gcm sizes' } });
  }
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: AES_256_GCM.tagBytes });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]);
  } catch (cause) {
    throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { cause, detail: { reason: 'gcm tag' } });
  }
}
