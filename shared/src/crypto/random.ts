import { createHash, randomBytes } from 'node:crypto';

/** Source of randomness, injected so that tests can be deterministic. Returns `n` fresh bytes. */
export type Random = (n: number) => Buffer;

/** The operating system's CSPRNG. */
export const systemRandom: Random = (n) => randomBytes(n);

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
