import { systemClock } from '@keygate/shared';
import { KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import { clustersFilePath } from '../adapters/clusters/clusters-file.js';
import { FileClusterRegistry } from '../adapters/clusters/file-cluster-registry.js';
import { PgClusterRegistry } from '../adapters/postgres/pg-clusters.js';
import { PgDatabase } from '../adapters/postgres/pg-database.js';
import { PgIdentities } from '../adapters/postgres/pg-identities.js';
import { PostgresKeyStore } from '../adapters/postgres/pg-key-store.js';
import { describeDatabase, poolConfig } from '../adapters/postgres/pg-settings.js';
import { JsonFileKeyStore } from '../adapters/store/json-file-store.js';
import { fileStore, type GatewayConfig, postgresStore } from '../config.js';
import type { AuditSink } from '../core/audit/audit-event.js';
import type { ClusterRegistry } from '../core/clusters/cluster.js';
import type { KeyStore } from '../core/keys/key-store.js';
import { buildPostgresAuditSink } from '../pg-audit-runtime.js';

/** What the clusters commands work on: the registry of the config's mode and its key store. */
export interface ClusterRuntime {
  readonly mode: 'file' | 'postgres';
  readonly registry: ClusterRegistry;
  /** To check that the root key exists (never the HSM: the CLI needs no PIN). */
  readonly keys: KeyStore;
  /**
   * Where the CLI writes its audit record itself (the PostgreSQL audit chain, which takes several
   * writers); undefined when the running gateway writes it (file mode) or nobody can (below).
   */
  readonly audit?: AuditSink | undefined;
  /** How add/remove are audited, for the command's output. */
  readonly auditNote: string;
  close(): Promise<void>;
}

/**
 * Opens the registry the config's access mode implies. File mode: token mode with `identities:`
 * and the file store (clusters.json beside the key store file). PostgreSQL: token mode with
 * `store.postgres` and no `identities:`. The certificate allow-list has no identities to add to:
 * CLUSTERS_NEED_TOKENS.
 */
export async function openClusterRuntime(
  config: GatewayConfig,
  configFile: string,
  logger: Logger,
): Promise<ClusterRuntime> {
  if (config.tokens === undefined) {
    throw new KeygateError('CLUSTERS_NEED_TOKENS', {
      detail: {
        reason:
          'the config has no tokens section: certificate allow-list mode (access.clients) has no API keys or identities (docs/clusters.md#modes)',
      },
    });
  }
  const file = fileStore(config);
  if (file !== undefined) {
    const keys = new JsonFileKeyStore(file.file, { createIfMissing: false });
    await keys.open();
    const clustersFile = clustersFilePath(file.file);
    return {
      mode: 'file',
      registry: new FileClusterRegistry(clustersFile, config.identities ?? []),
      keys,
      auditNote: `the running gateway applies ${clustersFile} within seconds and writes the audit record`,
      close: () => keys.close(),
    };
  }
  const settings = postgresStore(config);
  if (settings === undefined || config.identities !== undefined) {
    throw new KeygateError('IDENTITIES_READ_ONLY', {
      detail: {
        reason:
          'the config lists identities: with store.postgres (remove it to keep identities, and clusters, in the database)',
      },
    });
  }
  const db = new PgDatabase({
    pool: poolConfig(settings, configFile),
    describe: describeDatabase(settings),
    logger: logger.child({ component: 'postgres' }),
    migrate: settings.migrate === 'auto',
  });
  try {
    await db.open();
    const status = db.status();
    if (!status.ready)
      throw new KeygateError('STORE_UNAVAILABLE', { detail: { reason: status.reasons.join('; ') } });
    const identities = new PgIdentities(db, { logger: logger.child({ component: 'identities' }) });
    const a = config.audit;
    const audit =
      a?.target === 'postgres'
        ? await buildPostgresAuditSink({ ...a, replica: 'cli' }, configFile, logger, systemClock, db)
        : undefined;
    return {
      mode: 'postgres',
      registry: new PgClusterRegistry(db, identities),
      keys: new PostgresKeyStore(db),
      audit,
      auditNote:
        audit === undefined
          ? 'not audited: the audit log is a file with one writer, the gateway (the change is a row of keygate_changes)'
          : 'audited in the PostgreSQL audit chain',
      async close() {
        await audit?.close().catch(() => undefined);
        await db.close();
      },
    };
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
}
