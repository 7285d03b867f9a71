import { KeygateError } from '@keygate/shared/errors';
import type { AccessPolicy, Authenticator, AuthInput, Principal, Role } from '../../core/auth/principal.js';

/** One allow-list entry: a certificate identity, the instances it may use and its roles there. */
export interface AllowEntry {
  readonly identity: string;
  readonly instances: readonly string[];
  readonly roles: readonly Role[];
}

/**
 * Certificate-only authentication, the development mode used when the config has no `identities`
 * and `tokens` (token mode is TokenAuthenticator): the principal is the client certificate's
 * identity, with the roles the configured allow-list grants it. An identity that is
 * not listed authenticates with no roles, so every key operation answers FORBIDDEN_ERR.
 */
export class CertAllowlistAuthenticator implements Authenticator {
  readonly #byIdentity = new Map<string, Record<string, Role[]>>();
  /** Identities that are not listed: no roles anywhere. */
  readonly #none: Readonly<Record<string, Role[]>> = Object.freeze(Object.create(null));

  constructor(entries: readonly AllowEntry[]) {
    for (const e of entries) {
      // Null prototype: an instance named `toString` or `__proto__` is a key like any other.
      const roles = this.#byIdentity.get(e.identity) ?? (Object.create(null) as Record<string, Role[]>);
      for (const instance of e.instances)
        roles[instance] = [...new Set([...ownRoles(roles, instance), ...e.roles])];
      this.#byIdentity.set(e.identity, roles);
    }
  }

  async authenticate(input: AuthInput): Promise<Principal> {
    return {
      cert: input.cert,
      subject: input.cert.identity,
      roles: this.#byIdentity.get(input.cert.identity) ?? this.#none,
    };
  }
}

/**
 * The allow-list's access policy: grants `role` on `instance` when the principal holds it there, or
 * (when the instance is not listed) on the wildcard instance `*`; no role implies another here,
 * unlike token mode's RolePolicy. Reads own properties only, so any instance name is allowed or FORBIDDEN_ERR, never a crash.
 */
export class AllowlistPolicy implements AccessPolicy {
  authorize(principal: Principal, instance: string, role: Role): void {
    const held = Object.hasOwn(principal.roles, instance)
      ? ownRoles(principal.roles, instance)
      : ownRoles(principal.roles, '*');
    if (!held.includes(role)) {
      throw new KeygateError('FORBIDDEN_ERR', { detail: { subject: principal.subject, instance, role } });
    }
  }
}

/** The roles listed under `instance` itself (never an inherited property), or none. */
function ownRoles(roles: Readonly<Record<string, readonly Role[]>>, instance: string): readonly Role[] {
  return Object.hasOwn(roles, instance) ? (roles[instance] ?? []) : [];
}
