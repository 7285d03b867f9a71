import { timingSafeEqual } from 'node:crypto';

/** Compares two byte strings in time that depends only on their lengths. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

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
