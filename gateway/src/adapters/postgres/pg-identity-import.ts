import { configApiKeyId } from '../../core/auth/identity-directory.js';
import type { Role } from '../../core/auth/principal.js';
import { type PgDatabase, recordChange } from './pg-database.js';
import { checkFields, checkName, type IdentityRow } from './pg-identity-rows.js';

/** An `identities:` entry of a file-store config, as `store migrate-from-file` copies it. */
export interface ConfigIdentity {
  readonly name: string;
  readonly apiKeyHashes: readonly string[];
  readonly certIdentities: readonly string[];
  readonly roles: Readonly<Record<string, readonly Role[]>>;
}

/** What importing one configured identity did. */
export type IdentityImport = 'copied' | 'present' | 'conflict';

/**
 * Copies a configured identity with its API-key hashes into the database (`store
 * migrate-from-file`). The keys keep the ids the config gave them (`cfg-…`, configApiKeyId), so
 * tokens issued by the file-store gateways stay valid. An identity already there with the same
 * certificate identities and roles is `present` (its missing keys are added); one that differs,
 * or a key hash that belongs to another identity, is a `conflict` and is left as it is.
 */
export async function importConfigIdentity(db: PgDatabase, c: ConfigIdentity): Promise<IdentityImport> {
  checkName(c.name, 'INVALID_FIELD_ERR');
  const f = checkFields({ certIdentities: c.certIdentities, roles: c.roles });
  const taken = new Error('an API key hash belongs to another identity');
  return db
    .tx(async (client) => {
      const found = await client.query<IdentityRow>(
        'SELECT name, cert_identities, roles, created_at, updated_at FROM keygate_identities WHERE name = $1 FOR UPDATE',
        [c.name],
      );
      const row = found.rows[0];
      let outcome: IdentityImport = 'copied';
      if (row !== undefined) {
        const same =
          JSON.stringify([...row.cert_identities].sort()) === JSON.stringify([...f.certIdentities].sort()) &&
          JSON.stringify(sortedRoles(row.roles)) === JSON.stringify(sortedRoles(f.roles));
        if (!same) return 'conflict';
        outcome = 'present';
      } else {
        await client.query(
          'INSERT INTO keygate_identities (name, cert_identities, roles) VALUES ($1, $2, $3)',
          [c.name, f.certIdentities, JSON.stringify(f.roles)],
        );
      }
      for (const hash of c.apiKeyHashes) {
        const r = await client.query<{ identity: string }>(
          `INSERT INTO keygate_api_keys (id, hash, identity, label) VALUES ($1, $2, $3, 'from the config file')
         ON CONFLICT (hash) DO UPDATE SET hash = EXCLUDED.hash RETURNING identity`,
          [configApiKeyId(hash), hash, c.name],
        );
        if (r.rows[0]?.identity !== c.name) throw taken;
      }
      await recordChange(client, { kind: 'identity', name: c.name });
      return outcome;
    })
    .catch((err: unknown) => {
      // Rolled back: nothing of this identity was written.
      if (err === taken) return 'conflict' as const;
      throw err;
    });
}

function sortedRoles(roles: Readonly<Record<string, readonly Role[]>>): [string, Role[]][] {
  return Object.entries(roles)
    .map(([k, v]): [string, Role[]] => [k, [...v].sort()])
    .sort(([a], [b]) => a.localeCompare(b));
}
