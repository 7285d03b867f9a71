import type { Clock } from '@keygate/shared';
import { constantTimeEqual, sha256 } from '@keygate/shared/crypto';
import { KeygateError } from '@keygate/shared/errors';
import type { TokenVerifier } from './access-token.js';
import type { IdentitySource } from './identity-source.js';
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
  /**
   * Where identities live. When given, every request checks that the token's API key and
   * identity are still live and takes the identity's roles as they are now (not as the token
   * says), and the cache drops the tokens of an identity when it changes.
   */
  readonly identities?: IdentitySource;
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
  readonly #identities: IdentitySource | undefined;
  readonly #unsubscribe: () => void;
  /**
   * The last Authorization header that held a well-formed token, and the cache key of that token:
   * a shim sends the same header on every call until its token changes, so the header is matched
   * and the token hashed once per token, not once per request.
   */
  #last: { readonly header: string; readonly key: string } | undefined;

  constructor(opts: TokenAuthenticatorOptions) {
    this.#verifier = opts.verifier;
    this.#clock = opts.clock;
    this.#leeway = opts.leewaySeconds ?? 5;
    if (this.#leeway < 0 || this.#leeway > MAX_TOKEN_LEEWAY_SECONDS) {
      throw new RangeError(`token leeway must be between 0 and ${MAX_TOKEN_LEEWAY_SECONDS} seconds`);
    }
    this.#cache = new TokenCache(opts.cacheSize);
    this.#identities = opts.identities;
    this.#unsubscribe =
      opts.identities?.onInvalidate((subject) => {
        if (subject === undefined) this.#cache.clear();
        else this.#cache.deleteWhere((c) => c.subject === subject);
      }) ?? (() => undefined);
  }

  /** Stops listening to identity changes. */
  close(): void {
    this.#unsubscribe();
  }

  /** Returns the token's Principal, or throws AUTH_TOKEN_MISSING/INVALID/EXPIRED/CERT_MISMATCH. */
  async authenticate(input: AuthInput): Promise<Principal> {
    const header = input.authorization;
    const last = this.#last;
    let key: string;
    let token: string | undefined;
    if (last !== undefined && header === last.header) {
      key = last.key;
    } else {
      if (header === undefined || header.trim() === '') throw new KeygateError('AUTH_TOKEN_MISSING');
      const match = header.length <= MAX_TOKEN_LENGTH ? BEARER.exec(header) : null;
      token = match?.[1];
      if (token === undefined)
        throw new KeygateError('AUTH_TOKEN_INVALID', { detail: { reason: 'not a bearer JWT' } });
      key = sha256(token).toString('hex');
      this.#last = { header, key };
    }
    let claims = this.#cache.get(key);
    if (claims === undefined) {
      claims = await this.#verifier.verify(token ?? tokenOf(header as string));
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
    if (this.#identities === undefined) {
      return { cert: input.cert, subject: claims.subject, roles: claims.roles };
    }
    // Revocation and role changes: the identity as it is now, from memory kept current by the store.
    const live = this.#identities.liveIdentity(claims.subject, claims.apiKeyId);
    if (live === undefined || !live.certIdentities.includes(input.cert.identity)) {
      this.#cache.delete(key);
      throw new KeygateError('AUTH_TOKEN_REVOKED', {
        detail: {
          subject: claims.subject,
          certIdentity: input.cert.identity,
          reason:
            live === undefined ? 'api key or identity no longer live' : 'cert identity no longer allowed',
        },
      });
    }
    return { cert: input.cert, subject: claims.subject, roles: live.roles };
  }

  /** Entries in the verified-token cache (for metrics and tests). */
  get cachedTokens(): number {
    return this.#cache.size;
  }
}

/** The token of a header that BEARER already matched. */
function tokenOf(header: string): string {
  const token = BEARER.exec(header)?.[1];
  if (token === undefined)
    throw new KeygateError('AUTH_TOKEN_INVALID', { detail: { reason: 'not a bearer JWT' } });
  return token;
}
