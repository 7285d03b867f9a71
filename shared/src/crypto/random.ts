import { createHash, randomFillSync } from 'node:crypto';
import { allocSecret } from './bytes.js';

/** Source of randomness, injected so that tests can be deterministic. Returns `n` fresh bytes. */
export type Random = (n: number) => Buffer;

/** The operating system's CSPRNG, into a buffer from allocSecret (the bytes may become a key). */
export const systemRandom: Random = (n) => randomFillSync(allocSecret(n));

/**
 * A deterministic generator (SHA-256 in counter mode over a seed) for tests and golden vectors
 * only. Never use it for keys or IVs outside tests.
 */
export function seededRandom(seed: string): Random {
  let counter = 0;
  return (n) => {
    const out = Buffer.alloc(n);
    let filled = 0;
    while (filled < n) {
      const block = createHash('sha256').update(`${seed}:${counter++}`).digest();
      filled += block.copy(out, filled);
    }
    return out;
  };
}
