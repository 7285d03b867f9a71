import { hostname } from 'node:os';
import type { Clock } from '@keygate/shared';
import { configError } from '@keygate/shared/config';
import type { Logger } from '@keygate/shared/log';
import { KeyFileAuditSigner } from './adapters/audit/key-file-signer.js';
import { PgAuditSink } from './adapters/audit/pg-audit-sink.js';
import { PgDatabase } from './adapters/postgres/pg-database.js';
import { describeDatabase, poolConfig } from './adapters/postgres/pg-settings.js';
import { type GatewayConfig, postgresStore } from './config.js';
import type { AuditSink } from './core/audit/audit-event.js';

export type PostgresAuditConfig = Extract<NonNullable<GatewayConfig['audit']>, { target: 'postgres' }>;

/**
 * `audit.target: postgres`: the sink appending to the one audit chain in the gateway's database
 * (the key runtime's PgDatabase; its owner closes it). Never throws for the database: a sink
 * that cannot write starts unavailable (key operations answer 503 AUDIT_UNAVAILABLE) and probes.
 */
export async function buildPostgresAuditSink(
  a: PostgresAuditConfig,
  configFile: string,
  logger: Logger,
  clock: Clock,
  database: PgDatabase | undefined,
): Promise<AuditSink> {
  if (database === undefined) {
    throw configError(configFile, [
      { path: 'audit.target', expected: 'file unless the store is store.postgres' },
    ]);
  }
  const log = logger.child({ component: 'audit' });
  const signer = await KeyFileAuditSigner.fromFile(a.signingKeyFile);
  const replica = a.replica ?? hostname();
  const sink = await PgAuditSink.open({
    database,
    signer,
    clock,
    replica,
    checkpointEvery: a.checkpointEvery,
    checkpointIntervalMs: a.checkpointInterval,
    onError: (err) => log.error({ err: err.toLog() }, 'audit transaction failed'),
  });
  const stats = sink.stats;
  if (stats.available) {
    log.info(
      { target: 'postgres', replica, boot: stats.boot, lastSeq: stats.lastSeq, keyId: signer.keyId },
      'audit chain open',
    );
  } else {
    log.error(
      { target: 'postgres', replica },
      'audit chain unavailable: key operations answer 503 AUDIT_UNAVAILABLE until a transaction commits',
    );
  }
  return sink;
}

/**
 * For `audit verify --postgres` and `audit export`: a connection to the config's database that
 * never migrates (a read-only look; a schema this gateway does not know is refused by the query).
 */
export function auditDatabase(config: GatewayConfig, configFile: string, logger: Logger): PgDatabase {
  const s = postgresStore(config);
  if (s === undefined) {
    throw configError(configFile, [{ path: 'store', expected: 'store.postgres (the audit chain is in it)' }]);
  }
  return new PgDatabase({
    pool: { ...poolConfig(s, configFile), max: 2 },
    describe: describeDatabase(s),
    logger,
    migrate: false,
  });
}
