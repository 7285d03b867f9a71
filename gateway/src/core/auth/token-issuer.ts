import type { Clock } from '@keygate/shared';
import { APIKEY_GRANT_TYPE, type TokenResponse } from '@keygate/shared/api';
import { KeygateError } from '@keygate/shared/errors';
import type { TokenSigner } from './access-token.js';
import type { IdentitySource } from './identity-source.js';
import type { PeerCertificate } from './principal.js';

/** Default access token lifetime: 10 minutes. */
export const DEFAULT_TOKEN_LIFETIME_SECONDS = 600;

/** One `POST /identity/token` request, as the HTTP layer parsed it (fields may be missing). */
export interface TokenRequestInput {
  readonly grantType: string | undefined;
  readonly apikey: string | undefined;
  /** The client certificate of the connection; the token is bound to it (RFC 8705). */
  readonly cert: PeerCertificate;
}

/** An issued token and the service identity it was issued to (for the audit record). */
export interface IssuedToken {
  readonly response: TokenResponse;
  readonly subject: string;
}

export interface TokenIssuerOptions {
  readonly identities: IdentitySource;
  readonly signer: TokenSigner;
  readonly clock: Clock;
  readonly lifetimeSeconds?: number;
}

/** Exchanges an API key for a short-lived, certificate-bound access token (IBM IAM semantics). */
export class TokenIssuer {
  readonly #opts: TokenIssuerOptions;
  readonly #lifetime: number;

  constructor(opts: TokenIssuerOptions) {
    this.#opts = opts;
    this.#lifetime = opts.lifetimeSeconds ?? DEFAULT_TOKEN_LIFETIME_SECONDS;
    if (!Number.isInteger(this.#lifetime) || this.#lifetime <= 0) {
      throw new RangeError('token lifetime must be a positive whole number of seconds');
    }
  }

  /**
   * Returns IAM's token JSON, or throws AUTH_GRANT_TYPE_INVALID, AUTH_APIKEY_INVALID, or
   * FORBIDDEN_ERR when the connection's certificate identity may not use this service identity.
   */
  async issueToken(req: TokenRequestInput): Promise<TokenResponse> {
    return (await this.issue(req)).response;
  }

  /** As issueToken, and also names the service identity (never the key). */
  async issue(req: TokenRequestInput): Promise<IssuedToken> {
    if (req.grantType !== APIKEY_GRANT_TYPE) throw new KeygateError('AUTH_GRANT_TYPE_INVALID');
    if (req.apikey === undefined || req.apikey.length === 0 || req.apikey.length > 512) {
      throw new KeygateError('AUTH_APIKEY_INVALID');
    }
    const found = await this.#opts.identities.findByApiKey(req.apikey);
    if (found === undefined) throw new KeygateError('AUTH_APIKEY_INVALID');
    const { identity, apiKeyId } = found;
    if (!identity.certIdentities.includes(req.cert.identity)) {
      throw new KeygateError('FORBIDDEN_ERR', {
        detail: {
          subject: identity.name,
          certIdentity: req.cert.identity,
          reason: 'cert identity not allowed',
        },
      });
    }
    const issuedAt = Math.floor(this.#opts.clock.now().getTime() / 1000);
    const expiresAt = issuedAt + this.#lifetime;
    const accessToken = await this.#opts.signer.sign({
      subject: identity.name,
      apiKeyId,
      roles: identity.roles,
      certThumbprint: req.cert.thumbprint,
      issuedAt,
      expiresAt,
    });
    return {
      subject: identity.name,
      response: {
        access_token: accessToken,
        token_type: 'Bearer',
        expires_in: this.#lifetime,
        expiration: expiresAt,
      },
    };
  }
}
