import { createHash } from 'node:crypto';

/** SHA-256 of `data`, as a Buffer. */
export function sha256(data: Uint8Array | string): Buffer {
  return createHash('sha256').update(data).digest();
}

/** A short, log-safe fingerprint: the first 16 hex digits of SHA-256. Only for public or wrapped data. */
export function shortHash(data: Uint8Array | string): string {
  return sha256(data).subarray(0, 8).toString('hex');
}
