export { translateJoseError } from './jose-errors.js';
export { JwtTokens, type JwtTokensOptions, ROLES_CLAIM } from './jwt-tokens.js';
export {
  createSigningKeyFile,
  generateSigningKeyPem,
  loadSigningKeys,
  readSigningKeyFiles,
  type SigningKey,
} from './signing-keys.js';
export { type TokensConfig, tokensSchema } from './token-settings.js';
