import { hkdfSync } from 'node:crypto';

/** HKDF-SHA-256 (RFC 5869): `length` bytes from input key material, salt and info. */
export function hkdfSha256(
  ikm: Uint8Array,
  salt: Uint8Array,
  info: Uint8Array | string,
  length: number,
): Buffer {
  const infoBytes = typeof info === 'string' ? Buffer.from(info, 'utf8') : info;
  return Buffer.from(hkdfSync('sha256', ikm, salt, infoBytes, length));
}
