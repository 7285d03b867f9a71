import type { Role } from './principal.js';

/** A service identity as the token issuer and authenticator use it. */
export interface ServiceIdentity {
  readonly name: string;
  readonly certIdentities: readonly string[];
  readonly roles: Readonly<Record<string, readonly Role[]>>;
}

/** The identity an API key belongs to, and the key's id (carried in tokens as `akid`). */
export interface ApiKeyMatch {
  readonly identity: ServiceIdentity;
  /** Stable id of the API key; tokens name it so a revocation can refuse them. */
  readonly apiKeyId: string;
}

/**
 * Where service identities and their API keys come from: the config file (IdentityDirectory,
 * fixed for the life of the process) or PostgreSQL (adapters/postgres/pg-identities.ts, changed
 * at run time by any replica).
 *
 * `findByApiKey` is used to issue a token (may read the database); `liveIdentity` runs on every
 * authenticated request, so it answers from memory: the identity as it is now when the API key
 * the token was issued to is still live, undefined when the key was revoked or the identity
 * deleted (the token is then refused with AUTH_TOKEN_REVOKED).
 */
export interface IdentitySource {
  /** The identity owning `apiKey` (compared in constant time against the stored hash), or undefined. */
  findByApiKey(apiKey: string): Promise<ApiKeyMatch | undefined>;
  /**
   * The current identity `subject` when API key `apiKeyId` still belongs to it and is live.
   * `apiKeyId` is undefined for tokens issued before tokens carried it: a source that can revoke
   * keys at run time refuses those.
   */
  liveIdentity(subject: string, apiKeyId: string | undefined): ServiceIdentity | undefined;
  /**
   * Calls `fn` after an identity changed (its name) or when anything may have changed
   * (undefined), so that caches of verified tokens are dropped. Returns the unsubscribe function.
   */
  onInvalidate(fn: (subject: string | undefined) => void): () => void;
}

/** An identity as the admin API and CLI show it (never a key or a hash). */
export interface IdentityView {
  readonly name: string;
  readonly certIdentities: readonly string[];
  readonly roles: Readonly<Record<string, readonly Role[]>>;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly apiKeys: readonly ApiKeyView[];
}

/** An API key's record (the key itself is shown once, at creation, and never stored). */
export interface ApiKeyView {
  readonly id: string;
  readonly identity: string;
  readonly label?: string | undefined;
  readonly createdAt: string;
  readonly revokedAt?: string | undefined;
}

/** What creating or replacing an identity takes (validated with identityFieldsSchema). */
export interface IdentityFields {
  readonly certIdentities: readonly string[];
  readonly roles: Readonly<Record<string, readonly Role[]>>;
}

/** A new API key: the key (shown once) and its record. */
export interface CreatedApiKey {
  readonly apiKey: string;
  readonly record: ApiKeyView;
}

/**
 * Run-time management of identities and API keys (the PostgreSQL source). Every change is
 * announced to every replica. Errors: IDENTITY_NOT_FOUND, IDENTITY_EXISTS, APIKEY_NOT_FOUND,
 * STORE_UNAVAILABLE.
 */
export interface IdentityAdmin {
  list(): Promise<readonly IdentityView[]>;
  get(name: string): Promise<IdentityView>;
  create(name: string, fields: IdentityFields): Promise<IdentityView>;
  /** Replaces certificate identities and roles (API keys stay). */
  update(name: string, fields: IdentityFields): Promise<IdentityView>;
  /** Deletes the identity and its API keys; its tokens are refused from then on. */
  delete(name: string): Promise<void>;
  createApiKey(identity: string, label?: string): Promise<CreatedApiKey>;
  /** Marks the key revoked (kept for the record); tokens issued to it are refused from then on. */
  revokeApiKey(id: string): Promise<ApiKeyView>;
}
