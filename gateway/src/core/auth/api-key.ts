import { constantTimeEqual, type Random, sha256 } from '@keygate/shared/crypto';

/** Prefix of every keygate API key, so that leaked keys are easy to recognise and scan for. */
export const API_KEY_PREFIX = 'kg_';
/** Bytes of randomness in an API key: 256 bits, so a single fast hash is enough to store it. */
export const API_KEY_BYTES = 32;
/** Stored form of an API key: `sha256:` and 64 lowercase hex digits. */
export const API_KEY_HASH_PATTERN = /^sha256:[0-9a-f]{64}$/;

/** A new API key and the hash to put in the gateway config. The key is shown once, never stored. */
export interface GeneratedApiKey {
  readonly apiKey: string;
  readonly hash: string;
}

/** Makes `kg_` + base64url(32 random bytes) and its `sha256:<hex>` hash. */
export function generateApiKey(random: Random): GeneratedApiKey {
  const apiKey = API_KEY_PREFIX + random(API_KEY_BYTES).toString('base64url');
  return { apiKey, hash: hashApiKey(apiKey) };
}

/**
 * The stored form of an API key. A plain SHA-256 is enough: keys carry 256 random bits, so there
 * is nothing to brute-force, and it costs microseconds on every token request (unlike a password KDF).
 */
export function hashApiKey(apiKey: string): string {
  return `sha256:${sha256(apiKey).toString('hex')}`;
}

/** Compares a presented key with a stored hash in constant time (for equal-length hashes). */
export function apiKeyMatches(apiKey: string, storedHash: string): boolean {
  return constantTimeEqual(Buffer.from(hashApiKey(apiKey)), Buffer.from(storedHash));
}
