import { constantTimeEqual } from '@keygate/shared/crypto';
import { hashApiKey } from './api-key.js';
import type { Role } from './principal.js';

/** A service identity as the token issuer uses it. */
export interface ServiceIdentity {
  readonly name: string;
  readonly certIdentities: readonly string[];
  readonly roles: Readonly<Record<string, readonly Role[]>>;
}

/** One configured identity (an `identities:` entry, possibly deep-frozen by the config loader). */
export interface IdentityInput {
  readonly name: string;
  readonly apiKeyHashes: readonly string[];
  readonly certIdentities: readonly string[];
  readonly roles: Readonly<Record<string, readonly Role[]>>;
}

interface Entry {
  readonly hash: Buffer;
  readonly identity: ServiceIdentity;
}

/** Finds the service identity an API key belongs to. Built once from the validated config. */
export class IdentityDirectory {
  readonly #entries: readonly Entry[];

  constructor(identities: readonly IdentityInput[]) {
    this.#entries = identities.flatMap((c) => {
      const identity: ServiceIdentity = Object.freeze({
        name: c.name,
        certIdentities: Object.freeze([...c.certIdentities]),
        roles: freezeRoles(c.roles),
      });
      return c.apiKeyHashes.map((h) => ({ hash: Buffer.from(h), identity }));
    });
  }

  /**
   * The identity owning `apiKey`, or undefined. Compares against every stored hash without an
   * early exit, so the time taken does not reveal which (or whether a) hash matched.
   */
  findByApiKey(apiKey: string): ServiceIdentity | undefined {
    const presented = Buffer.from(hashApiKey(apiKey));
    let found: ServiceIdentity | undefined;
    for (const entry of this.#entries) {
      if (constantTimeEqual(presented, entry.hash) && found === undefined) found = entry.identity;
    }
    return found;
  }
}

function freezeRoles(
  roles: Readonly<Record<string, readonly Role[]>>,
): Readonly<Record<string, readonly Role[]>> {
  const out: Record<string, readonly Role[]> = Object.create(null);
  for (const [instance, list] of Object.entries(roles)) out[instance] = Object.freeze([...new Set(list)]);
  return Object.freeze(out);
}
