import { constantTimeEqual, sha256 } from '@keygate/shared/crypto';
import { hashApiKey } from './api-key.js';
import type { ApiKeyMatch, IdentitySource, ServiceIdentity } from './identity-source.js';
import type { Role } from './principal.js';

export type { ServiceIdentity } from './identity-source.js';

/** One configured identity (an `identities:` entry, possibly deep-frozen by the config loader). */
export interface IdentityInput {
  readonly name: string;
  readonly apiKeyHashes: readonly string[];
  readonly certIdentities: readonly string[];
  readonly roles: Readonly<Record<string, readonly Role[]>>;
}

interface Entry {
  readonly hash: Buffer;
  readonly apiKeyId: string;
  readonly identity: ServiceIdentity;
}

/**
 * The id of a configured API key: 16 hex digits of SHA-256 of its stored hash (stable across
 * restarts and replicas with the same config; reveals nothing about the key).
 */
export function configApiKeyId(hash: string): string {
  return `cfg-${sha256(hash).toString('hex').slice(0, 16)}`;
}

/**
 * Finds the service identity an API key belongs to. Built once from the validated config (the
 * `identities:` section): nothing changes while the process runs, so a token stays valid while
 * its identity and API key are still in the config the gateway started with.
 */
export class IdentityDirectory implements IdentitySource {
  readonly #entries: readonly Entry[];
  readonly #byName = new Map<string, { identity: ServiceIdentity; keyIds: ReadonlySet<string> }>();

  constructor(identities: readonly IdentityInput[]) {
    this.#entries = identities.flatMap((c) => {
      const identity: ServiceIdentity = Object.freeze({
        name: c.name,
        certIdentities: Object.freeze([...c.certIdentities]),
        roles: freezeRoles(c.roles),
      });
      const entries = c.apiKeyHashes.map((h) => ({
        hash: Buffer.from(h),
        apiKeyId: configApiKeyId(h),
        identity,
      }));
      this.#byName.set(c.name, { identity, keyIds: new Set(entries.map((e) => e.apiKeyId)) });
      return entries;
    });
  }

  /**
   * The identity owning `apiKey` and the key's id, or undefined. Compares against every stored
   * hash without an early exit, so the time taken does not reveal which (or whether a) hash matched.
   */
  async findByApiKey(apiKey: string): Promise<ApiKeyMatch | undefined> {
    return this.match(apiKey);
  }

  /** findByApiKey without the promise. */
  match(apiKey: string): ApiKeyMatch | undefined {
    const presented = Buffer.from(hashApiKey(apiKey));
    let found: Entry | undefined;
    for (const entry of this.#entries) {
      if (constantTimeEqual(presented, entry.hash) && found === undefined) found = entry;
    }
    return found === undefined ? undefined : { identity: found.identity, apiKeyId: found.apiKeyId };
  }

  /**
   * The configured identity `subject`, when `apiKeyId` is one of its keys. Tokens without a key
   * id (issued by an older gateway) are accepted while the identity exists: the config cannot
   * change under a running process.
   */
  liveIdentity(subject: string, apiKeyId: string | undefined): ServiceIdentity | undefined {
    const e = this.#byName.get(subject);
    if (e === undefined) return undefined;
    if (apiKeyId !== undefined && !e.keyIds.has(apiKeyId)) return undefined;
    return e.identity;
  }

  /** The config never changes at run time: nothing to announce. */
  onInvalidate(_fn: (subject: string | undefined) => void): () => void {
    return () => undefined;
  }
}

/** Roles with duplicates dropped, frozen, in an object without a prototype. */
export function freezeRoles(
  roles: Readonly<Record<string, readonly Role[]>>,
): Readonly<Record<string, readonly Role[]>> {
  const out: Record<string, readonly Role[]> = Object.create(null);
  for (const [instance, list] of Object.entries(roles)) out[instance] = Object.freeze([...new Set(list)]);
  return Object.freeze(out);
}
