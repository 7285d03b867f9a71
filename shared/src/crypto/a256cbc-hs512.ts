import { createCipheriv, createDecipheriv, createHmac } from 'node:crypto';
import { KeygateError } from '../errors/index.js';
import { constantTimeEqual } from './bytes.js';

/** Key, IV and tag sizes of A256CBC-HS512 (RFC 7518 §5.2.5). */
export const A256CBC_HS512 = { keyBytes: 64, ivBytes: 16, tagBytes: 32 } as const;

/** Output of an authenticated encryption: ciphertext and its authentication tag. */
export interface Sealed {
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
}

/**
 * AES-256-CBC + HMAC-SHA-512 truncated to 256 bits, encrypt-then-MAC, exactly as RFC 7518 §5.2.2:
 * MAC_KEY = key[0..32), ENC_KEY = key[32..64), T = HMAC(MAC_KEY, A || IV || E || AL)[0..32).
 */
export function a256cbcHs512Encrypt(
  key: Uint8Array,
  iv: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Sealed {
  checkSizes(key, iv);
  const cipher = createCipheriv('aes-256-cbc', key.subarray(32, 64), iv);
  const head = cipher.update(plaintext);
  const tail = cipher.final();
  const ciphertext = Buffer.concat([head, tail], head.length + tail.length);
  return { ciphertext, tag: macTag(key.subarray(0, 32), aad, iv, ciphertext) };
}

/**
 * Verifies the tag first (constant time), then decrypts. Any mismatch, bad padding or bad length
 * throws UNPROCESSABLE_CIPHERTEXT_ERR and reveals nothing else (no padding oracle).
 */
export function a256cbcHs512Decrypt(
  key: Uint8Array,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  aad: Uint8Array,
  tag: Uint8Array,
): Buffer {
  checkSizes(key, iv);
  if (ciphertext.length === 0 || ciphertext.length % 16 !== 0 || tag.length !== A256CBC_HS512.tagBytes) {
    throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { detail: { reason: 'cbc length' } });
  }
  const expected = macTag(key.subarray(0, 32), aad, iv, ciphertext);
  if (!constantTimeEqual(expected, tag)) {
    throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { detail: { reason: 'tag mismatch' } });
  }
  try {
    const decipher = createDecipheriv('aes-256-cbc', key.subarray(32, 64), iv);
    const head = decipher.update(ciphertext);
    const last = decipher.final();
    // A plaintext that is a multiple of 16 bytes leaves nothing for final(): no copy then.
    return last.length === 0 ? head : Buffer.concat([head, last], head.length + last.length);
  } catch (cause) {
    // Only reachable with a valid tag over bad padding, i.e. a ciphertext made with this key by a buggy writer.
    throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { cause, detail: { reason: 'padding' } });
  }
}

function macTag(macKey: Uint8Array, aad: Uint8Array, iv: Uint8Array, ciphertext: Uint8Array): Buffer {
  // AL: the AAD length in bits as a 64-bit big-endian integer (exact in a double up to 2^53).
  const bits = aad.length * 8;
  const al = Buffer.alloc(8);
  al.writeUInt32BE(Math.floor(bits / 0x1_0000_0000), 0);
  al.writeUInt32BE(bits >>> 0, 4);
  return createHmac('sha512', macKey)
    .update(aad)
    .update(iv)
    .update(ciphertext)
    .update(al)
    .digest()
    .subarray(0, 32);
}

function checkSizes(key: Uint8Array, iv: Uint8Array): void {
  if (key.length !== A256CBC_HS512.keyBytes) throw new RangeError('A256CBC-HS512 needs a 64-byte key');
  if (iv.length !== A256CBC_HS512.ivBytes) {
    throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { detail: { reason: 'iv length' } });
  }
}
