export type { AccessTokenClaims, TokenSigner, TokenVerifier } from './access-token.js';
export {
  API_KEY_HASH_PATTERN,
  API_KEY_PREFIX,
  apiKeyMatches,
  type GeneratedApiKey,
  generateApiKey,
  hashApiKey,
} from './api-key.js';
export {
  type IdentitiesConfig,
  type IdentityConfig,
  identitiesSchema,
  identitySchema,
} from './identities.js';
export { IdentityDirectory, type ServiceIdentity } from './identity-directory.js';
export * from './principal.js';
export { type GuardedOperation, OPERATION_ROLES, RolePolicy, roleFor } from './role-policy.js';
export {
  MAX_TOKEN_LEEWAY_SECONDS,
  TokenAuthenticator,
  type TokenAuthenticatorOptions,
} from './token-authenticator.js';
export { DEFAULT_TOKEN_CACHE_SIZE, TokenCache } from './token-cache.js';
export {
  DEFAULT_TOKEN_LIFETIME_SECONDS,
  type IssuedToken,
  TokenIssuer,
  type TokenIssuerOptions,
  type TokenRequestInput,
} from './token-issuer.js';
