import { timingSafeEqual } from 'node:crypto';

/** Compares two byte strings in time that depends only on their lengths. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/**
 * A zero-filled buffer for key material, over an ArrayBuffer of its own. Neither `Buffer.from`
 * nor `allocUnsafe` (slices of Node's shared pool, never zeroed as a whole) nor `Buffer.alloc`:
 * V8 keeps typed arrays of up to 64 bytes inside its heap, and the garbage collector copies them
 * when it moves objects, leaving copies that zeroing the buffer cannot reach. An ArrayBuffer's
 * backing store is allocated outside the heap and never moves.
 */
export function allocSecret(n: number): Buffer {
  return Buffer.from(new ArrayBuffer(n));
}

/** A private copy of key material `u` in a buffer from allocSecret; the caller zeroes both. */
export function copySecret(u: Uint8Array): Buffer {
  const out = allocSecret(u.length);
  out.set(u);
  return out;
}

/**
 * A Buffer over the same bytes as `u` (no copy), for encoding key material (`toString('base64')`)
 * without leaving a copy behind. `u` should itself come from allocSecret.
 */
export function viewOf(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/**
 * Decodes base64 key material into a buffer from allocSecret (Buffer.from(text, 'base64') would
 * copy it into Node's shared pool). Returns undefined when `text` is not canonical base64 of
 * `min`..`max` bytes.
 */
export function secretFromBase64(text: string, min: number, max: number): Buffer | undefined {
  // Checked as text first: Node's decoder skips characters it does not know.
  if (text.length % 4 !== 0 || !BASE64.test(text)) return undefined;
  const n = Buffer.byteLength(text, 'base64');
  if (n < min || n > max) return undefined;
  const out = allocSecret(n);
  if (out.write(text, 'base64') !== n) {
    out.fill(0);
    return undefined;
  }
  return out;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Overwrites key material in place with zeros. Call it when a key leaves memory's use. */
export function zeroize(...buffers: (Uint8Array | undefined)[]): void {
  for (const b of buffers) b?.fill(0);
}

/** Runs `fn` with `secret`, then zeroes `secret` whatever `fn` does. */
export async function withZeroized<T>(secret: Uint8Array, fn: (s: Uint8Array) => Promise<T> | T): Promise<T> {
  try {
    return await fn(secret);
  } finally {
    secret.fill(0);
  }
}
