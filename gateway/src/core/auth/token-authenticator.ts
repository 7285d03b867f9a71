import type { Clock } from '@keygate/shared';
import { constantTimeEqual, sha256 } from '@keygate/shared/crypto';
import { KeygateError } from '@keygate/shared/errors';
import type { TokenVerifier } from './access-token.js';
import type { Authenticator, AuthInput, Principal } from './principal.js';
import { TokenCache } from './token-cache.js';

/** Most clock skew accepted on expiry, in seconds. */
export const MAX_TOKEN_LEEWAY_SECONDS = 30;

const BEARER = /^Bearer +([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+) *$/i;
const MAX_TOKEN_LENGTH = 8192;

export interface TokenAuthenticatorOptions {
  readonly verifier: TokenVerifier;
  readonly clock: Clock;
  /** Expiry leeway in seconds (default 5, at most 30). Use the same value as the verifier. */
  readonly leewaySeconds?: number;
  /** Bound of the verified-token cache (default 10,000; 0 disables it). */
  readonly cacheSize?: number;
}

/**
 * Authenticates `authorization: Bearer <token>`: a verified, unexpired token bound to the
 * connection's client certificate. Verified tokens are cached by SHA-256 of the token; a cache
 * hit still checks expiry and the certificate binding.
 */
export class TokenAuthenticator implements Authenticator {
  readonly #verifier: TokenVerifier;
  readonly #clock: Clock;
  readonly #leeway: number;
  readonly #cache: TokenCache;

  constructor(opts: TokenAuthenticatorOptions) {
    this.#verifier = opts.verifier;
    this.#clock = opts.clock;
    this.#leeway = opts.leewaySeconds ?? 5;
    if (this.#leeway < 0 || this.#leeway > MAX_TOKEN_LEEWAY_SECONDS) {
      throw new RangeError(`token leeway must be between 0 and ${MAX_TOKEN_LEEWAY_SECONDS} seconds`);
    }
    this.#cache = new TokenCache(opts.cacheSize);
  }

  /** Returns the token's Principal, or throws AUTH_TOKEN_MISSING/INVALID/EXPIRED/CERT_MISMATCH. */
  async authenticate(input: AuthInput): Promise<Principal> {
    const header = input.authorization;
    if (header === undefined || header.trim() === '') throw new KeygateError('AUTH_TOKEN_MISSING');
    const match = header.length <= MAX_TOKEN_LENGTH ? BEARER.exec(header) : null;
    const token = match?.[1];
    if (token === undefined)
      throw new KeygateError('AUTH_TOKEN_INVALID', { detail: { reason: 'not a bearer JWT' } });

    const key = sha256(token).toString('hex');
    let claims = this.#cache.get(key);
    if (claims === undefined) {
      claims = await this.#verifier.verify(token);
      this.#cache.set(key, claims);
    }
    const now = this.#clock.now().getTime() / 1000;
    if (now > claims.expiresAt + this.#leeway) {
      this.#cache.delete(key);
      throw new KeygateError('AUTH_TOKEN_EXPIRED', { detail: { subject: claims.subject } });
    }
    if (!constantTimeEqual(Buffer.from(claims.certThumbprint), Buffer.from(input.cert.thumbprint))) {
      throw new KeygateError('AUTH_TOKEN_CERT_MISMATCH', {
        detail: { subject: claims.subject, certIdentity: input.cert.identity },
      });
    }
    return { cert: input.cert, subject: claims.subject, roles: claims.roles };
  }

  /** Entries in the verified-token cache (for metrics and tests). */
  get cachedTokens(): number {
    return this.#cache.size;
  }
}
