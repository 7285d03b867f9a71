import { KeygateError } from '@keygate/shared/errors';
import type { Role } from '../../core/auth/principal.js';
import {
  type ClusterRecord,
  type ClusterRegistry,
  clusterCertIdentity,
  type RegisteredCluster,
} from '../../core/clusters/cluster.js';
import type { PgDatabase } from './pg-database.js';
import type { PgIdentities } from './pg-identities.js';

interface ClusterRow {
  name: string;
  instance: string;
  crk: string;
  roles: Role[];
  created_at: Date;
  gateway_urls: string[];
  cert_serial: string;
  cert_fingerprint: string;
  cert_not_after: Date;
}

const COLUMNS =
  'name, instance, crk, roles, created_at, gateway_urls, cert_serial, cert_fingerprint, cert_not_after';

/**
 * Clusters with identities in PostgreSQL: the identity and its API key through PgIdentities (so
 * every replica hears them on the change feed), the metadata in keygate_clusters (migration 8).
 * Removing deletes the identity, which revokes its keys and cascades to the row.
 */
export class PgClusterRegistry implements ClusterRegistry {
  readonly #db: PgDatabase;
  readonly #ids: PgIdentities;

  constructor(db: PgDatabase, identities: PgIdentities) {
    this.#db = db;
    this.#ids = identities;
  }

  async taken(): Promise<{ names: ReadonlySet<string>; certIdentities: ReadonlySet<string> }> {
    const all = await this.#ids.list();
    return {
      names: new Set(all.map((i) => i.name)),
      certIdentities: new Set(all.flatMap((i) => i.certIdentities)),
    };
  }

  async list(): Promise<readonly ClusterRecord[]> {
    const r = await this.#db.query<ClusterRow>(`SELECT ${COLUMNS} FROM keygate_clusters ORDER BY name`);
    return r.rows.map(toRecord);
  }

  async get(name: string): Promise<ClusterRecord | undefined> {
    const r = await this.#db.query<ClusterRow>(`SELECT ${COLUMNS} FROM keygate_clusters WHERE name = $1`, [
      name,
    ]);
    const row = r.rows[0];
    return row === undefined ? undefined : toRecord(row);
  }

  /** Identity, then API key, then the row; anything failing after the identity deletes it again. */
  async add(record: ClusterRecord): Promise<RegisteredCluster> {
    try {
      await this.#ids.create(record.name, {
        certIdentities: [clusterCertIdentity(record.name)],
        roles: { [record.instance]: record.roles },
      });
    } catch (err) {
      if (err instanceof KeygateError && err.code === 'IDENTITY_EXISTS')
        throw new KeygateError('CLUSTER_EXISTS', { detail: { name: record.name } });
      throw err;
    }
    try {
      const { apiKey } = await this.#ids.createApiKey(record.name, `cluster ${record.name}`);
      await this.#db.query(
        `INSERT INTO keygate_clusters (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
        [
          record.name,
          record.instance,
          record.crk,
          JSON.stringify(record.roles),
          record.createdAt,
          JSON.stringify(record.gatewayUrls),
          record.cert.serial,
          record.cert.fingerprint256,
          record.cert.notAfter,
        ],
      );
      return { record, apiKey };
    } catch (err) {
      await this.#ids.delete(record.name).catch(() => undefined);
      throw err;
    }
  }

  async remove(name: string): Promise<void> {
    if ((await this.get(name)) === undefined)
      throw new KeygateError('CLUSTER_NOT_FOUND', { detail: { name } });
    await this.#ids.delete(name);
  }

  async close(): Promise<void> {}
}

function toRecord(r: ClusterRow): ClusterRecord {
  return {
    name: r.name,
    instance: r.instance,
    crk: r.crk,
    roles: r.roles,
    createdAt: r.created_at.toISOString(),
    gatewayUrls: r.gateway_urls,
    cert: {
      serial: r.cert_serial,
      fingerprint256: r.cert_fingerprint,
      notAfter: r.cert_not_after.toISOString(),
    },
  };
}
