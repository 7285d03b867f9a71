import { KeygateError } from '@keygate/shared/errors';
import type { AccessPolicy, Authenticator, AuthInput, Principal, Role } from '../../core/auth/principal.js';

/** One allow-list entry: a certificate identity, the instances it may use and its roles there. */
export interface AllowEntry {
  readonly identity: string;
  readonly instances: readonly string[];
  readonly roles: readonly Role[];
}

/**
 * Certificate-only authentication (until access tokens exist): the principal is the client
 * certificate's identity, with the roles the configured allow-list grants it. An identity that is
 * not listed authenticates with no roles, so every key operation answers FORBIDDEN_ERR.
 */
export class CertAllowlistAuthenticator implements Authenticator {
  readonly #byIdentity = new Map<string, Record<string, Role[]>>();

  constructor(entries: readonly AllowEntry[]) {
    for (const e of entries) {
      const roles = this.#byIdentity.get(e.identity) ?? {};
      for (const instance of e.instances)
        roles[instance] = [...new Set([...(roles[instance] ?? []), ...e.roles])];
      this.#byIdentity.set(e.identity, roles);
    }
  }

  async authenticate(input: AuthInput): Promise<Principal> {
    return {
      cert: input.cert,
      subject: input.cert.identity,
      roles: this.#byIdentity.get(input.cert.identity) ?? {},
    };
  }
}

/** Grants `role` on `instance` when the principal holds it there (wildcard instance `*` allowed). */
export class RoleAccessPolicy implements AccessPolicy {
  authorize(principal: Principal, instance: string, role: Role): void {
    const held = principal.roles[instance] ?? principal.roles['*'] ?? [];
    if (!held.includes(role)) {
      throw new KeygateError('FORBIDDEN_ERR', { detail: { subject: principal.subject, instance, role } });
    }
  }
}
