import type { AccessTokenClaims } from './access-token.js';

/** Default bound of the verified-token cache. */
export const DEFAULT_TOKEN_CACHE_SIZE = 10_000;

/**
 * Verified token claims by SHA-256 of the token, least recently used evicted first. Only tokens
 * that passed signature verification are stored; expiry is checked again on every hit by the caller.
 */
export class TokenCache {
  readonly #max: number;
  readonly #map = new Map<string, AccessTokenClaims>();

  constructor(maxEntries = DEFAULT_TOKEN_CACHE_SIZE) {
    if (!Number.isInteger(maxEntries) || maxEntries < 0) throw new RangeError('cache size must be >= 0');
    this.#max = maxEntries;
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string): AccessTokenClaims | undefined {
    const claims = this.#map.get(key);
    if (claims !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, claims);
    }
    return claims;
  }

  set(key: string, claims: AccessTokenClaims): void {
    if (this.#max === 0) return;
    this.#map.delete(key);
    this.#map.set(key, claims);
    while (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next();
      if (oldest.done === true) break;
      this.#map.delete(oldest.value);
    }
  }

  delete(key: string): void {
    this.#map.delete(key);
  }

  /** Drops every entry whose claims match (e.g. all tokens of one identity). */
  deleteWhere(match: (claims: AccessTokenClaims) => boolean): void {
    for (const [key, claims] of this.#map) if (match(claims)) this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }
}
