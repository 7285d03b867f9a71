import { KeygateError } from '@keygate/shared/errors';
import { IDENTITY_NAME, identityFieldsSchema, rolesSchema } from '../../core/auth/identities.js';
import { freezeRoles, type ServiceIdentity } from '../../core/auth/identity-directory.js';
import type { ApiKeyView, IdentityFields, IdentityView } from '../../core/auth/identity-source.js';
import type { Role } from '../../core/auth/principal.js';
import { type PgClient, recordChange } from './pg-database.js';

// The rows of keygate_identities and keygate_api_keys, and their checks and views, shared by
// PgIdentities and the config import (pg-identity-import.ts).

export interface IdentityRow {
  name: string;
  cert_identities: string[];
  roles: Record<string, Role[]>;
  created_at: Date;
  updated_at: Date;
}

export interface ApiKeyRow {
  id: string;
  identity: string;
  label: string | null;
  created_at: Date;
  revoked_at: Date | null;
}

export interface Live {
  readonly identity: ServiceIdentity;
  /** Ids of the identity's API keys that are not revoked. */
  readonly keyIds: ReadonlySet<string>;
}

/** Announces a change of `identity` and marks it updated, inside the caller's transaction. */
export async function touch(client: PgClient, identity: string): Promise<void> {
  await client.query('UPDATE keygate_identities SET updated_at = now() WHERE name = $1', [identity]);
  await recordChange(client, { kind: 'identity', name: identity });
}

export function checkName(name: string, code: 'IDENTITY_NOT_FOUND' | 'INVALID_FIELD_ERR'): void {
  if (!IDENTITY_NAME.test(name)) {
    throw new KeygateError(code, { detail: code === 'INVALID_FIELD_ERR' ? { fields: 'name' } : {} });
  }
}

export function checkFields(fields: IdentityFields): IdentityFields {
  const r = identityFieldsSchema.safeParse(fields);
  if (!r.success) {
    throw new KeygateError('INVALID_FIELD_ERR', {
      detail: { fields: r.error.issues.map((i) => i.path.join('.') || '(body)').join(',') },
    });
  }
  return { certIdentities: [...new Set(r.data.certIdentities)], roles: freezeRoles(r.data.roles) };
}

/** A row as an identity; roles that fail validation (a row edited by hand) grant nothing. */
export function toIdentity(row: Pick<IdentityRow, 'name' | 'cert_identities' | 'roles'>): ServiceIdentity {
  const roles = rolesSchema.safeParse(row.roles);
  return Object.freeze({
    name: row.name,
    certIdentities: Object.freeze([...row.cert_identities]),
    roles: freezeRoles(roles.success ? roles.data : {}),
  });
}

export function toKeyView(k: ApiKeyRow): ApiKeyView {
  return {
    id: k.id,
    identity: k.identity,
    ...(k.label === null ? {} : { label: k.label }),
    createdAt: k.created_at.toISOString(),
    ...(k.revoked_at === null ? {} : { revokedAt: k.revoked_at.toISOString() }),
  };
}

export function toView(row: IdentityRow, keys: readonly ApiKeyRow[]): IdentityView {
  const id = toIdentity(row);
  return {
    name: id.name,
    certIdentities: id.certIdentities,
    roles: id.roles,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    apiKeys: keys.map(toKeyView),
  };
}
