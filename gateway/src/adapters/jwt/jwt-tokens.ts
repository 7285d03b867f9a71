import type { Clock } from '@keygate/shared';
import { INSTANCE_ID_PATTERN } from '@keygate/shared/api';
import { type Random, systemRandom } from '@keygate/shared/crypto';
import { KeygateError } from '@keygate/shared/errors';
import { type JSONWebKeySet, type JWTHeaderParameters, jwtVerify, SignJWT } from 'jose';
import { z } from 'zod';
import type { AccessTokenClaims, TokenSigner, TokenVerifier } from '../../core/auth/access-token.js';
import { GLOBAL_SCOPE, ROLES } from '../../core/auth/principal.js';
import { translateJoseError } from './jose-errors.js';
import type { SigningKey } from './signing-keys.js';

/** Name of the claim carrying roles per instance. */
export const ROLES_CLAIM = 'keygate_roles';
/** Name of the claim carrying the id of the API key a token was issued for. */
export const API_KEY_ID_CLAIM = 'akid';

export interface JwtTokensOptions {
  /** Signing keys; the first signs, all verify (see loadSigningKeys). */
  readonly keys: readonly SigningKey[];
  readonly issuer: string;
  readonly audience: string;
  readonly clock: Clock;
  /** Expiry and not-before leeway in seconds (default 5, at most 30). */
  readonly leewaySeconds?: number;
  /** Source of the `jti` (default the system CSPRNG). */
  readonly random?: Random;
}

const payloadSchema = z.object({
  sub: z.string().min(1),
  iat: z.number().int(),
  exp: z.number().int(),
  cnf: z.object({ 'x5t#S256': z.string().regex(/^[A-Za-z0-9_-]{43}$/) }),
  [ROLES_CLAIM]: z.record(
    z.string().refine((k) => k === GLOBAL_SCOPE || INSTANCE_ID_PATTERN.test(k)),
    z.array(z.enum(ROLES)),
  ),
  [API_KEY_ID_CLAIM]: z.string().min(1).max(128).optional(),
});

/**
 * ES256 JWT access tokens with jose: `kid` header, issuer, audience, `sub`, roles per instance,
 * and the RFC 8705 `cnf.x5t#S256` certificate binding.
 */
export class JwtTokens implements TokenSigner, TokenVerifier {
  readonly #opts: JwtTokensOptions;
  readonly #byKid: ReadonlyMap<string, SigningKey>;
  readonly #signer: SigningKey;
  readonly #leeway: number;
  readonly #random: Random;

  constructor(opts: JwtTokensOptions) {
    const [signer] = opts.keys;
    if (signer === undefined)
      throw new KeygateError('CONFIG_INVALID', { detail: { expected: 'a signing key' } });
    this.#opts = opts;
    this.#signer = signer;
    this.#byKid = new Map(opts.keys.map((k) => [k.kid, k]));
    this.#leeway = opts.leewaySeconds ?? 5;
    if (this.#leeway < 0 || this.#leeway > 30) throw new RangeError('token leeway must be 0 to 30 seconds');
    this.#random = opts.random ?? systemRandom;
  }

  /** The kid of the key that signs new tokens. */
  get signingKid(): string {
    return this.#signer.kid;
  }

  /** Signs `claims` as an ES256 JWT with the first key. */
  async sign(claims: AccessTokenClaims): Promise<string> {
    return new SignJWT({
      [ROLES_CLAIM]: claims.roles,
      cnf: { 'x5t#S256': claims.certThumbprint },
      ...(claims.apiKeyId === undefined ? {} : { [API_KEY_ID_CLAIM]: claims.apiKeyId }),
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: this.#signer.kid })
      .setIssuer(this.#opts.issuer)
      .setAudience(this.#opts.audience)
      .setSubject(claims.subject)
      .setIssuedAt(claims.issuedAt)
      .setNotBefore(claims.issuedAt)
      .setExpirationTime(claims.expiresAt)
      .setJti(this.#random(16).toString('base64url'))
      .sign(this.#signer.privateKey);
  }

  /** Verifies signature (by kid), issuer, audience and expiry; throws AUTH_TOKEN_INVALID or AUTH_TOKEN_EXPIRED. */
  async verify(token: string): Promise<AccessTokenClaims> {
    let payload: unknown;
    try {
      const result = await jwtVerify(token, (header: JWTHeaderParameters) => this.#publicKeyFor(header), {
        algorithms: ['ES256'],
        issuer: this.#opts.issuer,
        audience: this.#opts.audience,
        currentDate: this.#opts.clock.now(),
        clockTolerance: this.#leeway,
        requiredClaims: ['sub', 'iat', 'exp', 'cnf', ROLES_CLAIM],
        typ: 'JWT',
      });
      payload = result.payload;
    } catch (err) {
      throw translateJoseError(err);
    }
    const parsed = payloadSchema.safeParse(payload);
    if (!parsed.success) throw new KeygateError('AUTH_TOKEN_INVALID', { detail: { reason: 'claims shape' } });
    const roles: Record<string, readonly (typeof ROLES)[number][]> = Object.create(null);
    for (const [instance, list] of Object.entries(parsed.data[ROLES_CLAIM]))
      roles[instance] = Object.freeze(list);
    return {
      subject: parsed.data.sub,
      ...(parsed.data[API_KEY_ID_CLAIM] === undefined ? {} : { apiKeyId: parsed.data[API_KEY_ID_CLAIM] }),
      roles: Object.freeze(roles),
      certThumbprint: parsed.data.cnf['x5t#S256'],
      issuedAt: parsed.data.iat,
      expiresAt: parsed.data.exp,
    };
  }

  /** The JWKS document for `/.well-known/jwks.json`: every verifying key's public JWK. */
  jwks(): JSONWebKeySet {
    return { keys: this.#opts.keys.map((k) => ({ ...k.publicJwk })) };
  }

  #publicKeyFor(header: JWTHeaderParameters): SigningKey['publicKey'] {
    const key = header.kid === undefined ? undefined : this.#byKid.get(header.kid);
    if (key === undefined) {
      throw new KeygateError('AUTH_TOKEN_INVALID', {
        detail: { reason: 'unknown kid', kid: header.kid ?? '' },
      });
    }
    return key.publicKey;
  }
}
