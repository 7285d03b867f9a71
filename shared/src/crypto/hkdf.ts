import { createHmac } from 'node:crypto';
import { allocSecret } from './bytes.js';

const HASH_BYTES = 32;

/**
 * HKDF-SHA-256 (RFC 5869): `length` bytes from input key material, salt and info, in a buffer from
 * allocSecret that the caller zeroes. Built on HMAC rather than crypto.hkdfSync: hkdfSync turns
 * `ikm` (a DEK) into a KeyObject, a copy that lives until the garbage collector frees it; here
 * `ikm` is only HMAC input, which OpenSSL wipes when the digest is done.
 */
export function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array | string,
  length: number,
): Buffer {
  if (length < 1 || length > 255 * HASH_BYTES) throw new RangeError('HKDF length out of range');
  const infoBytes = typeof info === 'string' ? Buffer.from(info, 'utf8') : info;
  const prk = createHmac('sha256', salt.length > 0 ? salt : Buffer.alloc(HASH_BYTES))
    .update(ikm)
    .digest();
  const out = allocSecret(length);
  let t: Buffer = Buffer.alloc(0);
  try {
    for (let i = 1, filled = 0; filled < length; i++) {
      const next = createHmac('sha256', prk).update(t).update(infoBytes).update(Uint8Array.of(i)).digest();
      t.fill(0);
      t = next;
      filled += t.copy(out, filled);
    }
    return out;
  } finally {
    t.fill(0);
    prk.fill(0);
  }
}
