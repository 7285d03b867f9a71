import type { Role } from './principal.js';

/** What an access token says, independent of its encoding (JWT in the jwt adapter). */
export interface AccessTokenClaims {
  /** Service identity name. */
  readonly subject: string;
  /**
   * The API key the token was issued for (JWT claim `akid`): every request checks it is still
   * live, so revoking the key refuses its tokens at once. Absent in tokens of older gateways.
   */
  readonly apiKeyId?: string | undefined;
  /** Roles per instance id, as granted when the token was issued. */
  readonly roles: Readonly<Record<string, readonly Role[]>>;
  /** RFC 8705 `cnf.x5t#S256`: the thumbprint of the client certificate that asked for the token. */
  readonly certThumbprint: string;
  /** Seconds since the epoch. */
  readonly issuedAt: number;
  /** Seconds since the epoch. */
  readonly expiresAt: number;
}

/** Encodes and signs access tokens. Implemented by adapters/jwt (ES256 JWTs, keys shared by replicas). */
export interface TokenSigner {
  sign(claims: AccessTokenClaims): Promise<string>;
}

/**
 * Checks a token's signature, issuer, audience and expiry and returns its claims; throws
 * AUTH_TOKEN_INVALID or AUTH_TOKEN_EXPIRED (vendor errors translated). Certificate binding is
 * checked by the caller, which knows the connection.
 */
export interface TokenVerifier {
  verify(token: string): Promise<AccessTokenClaims>;
}
