import { KeygateError } from '@keygate/shared/errors';
import type { AuditOperation } from '../audit/audit-event.js';
import type { AccessPolicy, Principal, Role } from './principal.js';

/** Operations that need a role (everything audited except issuing tokens and console logins). */
export type GuardedOperation = Exclude<AuditOperation, 'token.issue' | 'console.login' | 'console.logout'>;

/** The role each operation needs: key lifecycle needs keys:admin, get, metadata, versions and list need keys:read. */
export const OPERATION_ROLES: Readonly<Record<GuardedOperation, Role>> = Object.freeze({
  wrap: 'wrap',
  unwrap: 'unwrap',
  rewrap: 'rewrap',
  'key.list': 'keys:read',
  'key.get': 'keys:read',
  'key.metadata': 'keys:read',
  'key.versions': 'keys:read',
  'key.create': 'keys:admin',
  'key.rotate': 'keys:admin',
  'key.disable': 'keys:admin',
  'key.enable': 'keys:admin',
  'key.destroy': 'keys:admin',
  'key.version.disable': 'keys:admin',
  'key.version.enable': 'keys:admin',
  'key.rotation': 'keys:read',
  'identity.list': 'identities:admin',
  'identity.get': 'identities:admin',
  'identity.create': 'identities:admin',
  'identity.update': 'identities:admin',
  'identity.delete': 'identities:admin',
  'apikey.create': 'identities:admin',
  'apikey.revoke': 'identities:admin',
  'fleet.read': 'fleet:read',
  'cluster.add': 'identities:admin',
  'cluster.remove': 'identities:admin',
});

/** The role `operation` needs. */
export function roleFor(operation: GuardedOperation): Role {
  return OPERATION_ROLES[operation];
}

/** Roles that also grant `role` (keys:admin implies keys:read). */
const IMPLIED_BY: Readonly<Record<Role, readonly Role[]>> = {
  wrap: ['wrap'],
  unwrap: ['unwrap'],
  rewrap: ['rewrap'],
  'keys:read': ['keys:read', 'keys:admin'],
  'keys:admin': ['keys:admin'],
  'identities:admin': ['identities:admin'],
  'fleet:read': ['fleet:read', 'identities:admin'],
};

/** Allows a role on an instance only when the principal holds it (or a role implying it) there. */
export class RolePolicy implements AccessPolicy {
  /** Returns when allowed; throws FORBIDDEN_ERR naming subject, instance and role in the log detail. */
  authorize(principal: Principal, instance: string, role: Role): void {
    const held = Object.hasOwn(principal.roles, instance) ? principal.roles[instance] : undefined;
    if (held !== undefined && IMPLIED_BY[role].some((r) => held.includes(r))) return;
    throw new KeygateError('FORBIDDEN_ERR', { detail: { subject: principal.subject, instance, role } });
  }
}
