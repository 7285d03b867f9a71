/** A rate: `ratePerSecond` on average, up to `burst` at once. */
export interface RateLimit {
  readonly ratePerSecond: number;
  readonly burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/**
 * Token buckets by key (a certificate thumbprint, an identity name, a source address), bounded in
 * number: when `maxKeys` are held the least recently used one is forgotten (it starts full again,
 * which errs on the side of letting a caller through). Time is passed in, so tests are exact.
 */
export class TokenBuckets {
  readonly #buckets = new Map<string, Bucket>();
  readonly #limit: RateLimit;
  readonly #maxKeys: number;

  constructor(limit: RateLimit, maxKeys = 10_000) {
    if (!(limit.ratePerSecond > 0) || !(limit.burst >= 1)) throw new RangeError('rate > 0 and burst >= 1');
    this.#limit = limit;
    this.#maxKeys = maxKeys;
  }

  get size(): number {
    return this.#buckets.size;
  }

  /** Takes one token for `key` at `nowMs`: 0 when granted, else the milliseconds until one is due. */
  take(key: string, nowMs: number): number {
    const { ratePerSecond, burst } = this.#limit;
    let b = this.#buckets.get(key);
    if (b === undefined) {
      b = { tokens: burst, at: nowMs };
      if (this.#buckets.size >= this.#maxKeys) {
        const oldest = this.#buckets.keys().next().value;
        if (oldest !== undefined) this.#buckets.delete(oldest);
      }
    } else {
      this.#buckets.delete(key); // re-inserted below: Map order is the LRU order
      b.tokens = Math.min(burst, b.tokens + ((nowMs - b.at) / 1000) * ratePerSecond);
      b.at = nowMs;
    }
    this.#buckets.set(key, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - b.tokens) / ratePerSecond) * 1000);
  }
}
