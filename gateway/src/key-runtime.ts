import { type Clock, systemClock } from '@keygate/shared';
import { systemRandom } from '@keygate/shared/crypto';
import type { Logger } from '@keygate/shared/log';
import { Pkcs11Hsm } from './adapters/pkcs11/pkcs11-hsm.js';
import { PgDatabase } from './adapters/postgres/pg-database.js';
import { PostgresKeyStore } from './adapters/postgres/pg-key-store.js';
import { describeDatabase, poolConfig } from './adapters/postgres/pg-settings.js';
import { SimulatedLatencyHsm } from './adapters/sim/simulated-latency-hsm.js';
import { SoftwareHsm } from './adapters/software/software-hsm.js';
import { JsonFileKeyStore } from './adapters/store/json-file-store.js';
import { fileStore, type GatewayConfig, postgresStore, readMasterKey, resolvePin } from './config.js';
import type { AuditSink } from './core/audit/audit-event.js';
import type { Hsm } from './core/keys/hsm.js';
import { createKeyService, type KeyService } from './core/keys/key-service.js';
import type { KeyStore } from './core/keys/key-store.js';
import { UsageBudget } from './core/keys/usage-budget.js';
import { UsageReporter } from './usage-audit.js';

/** The key side of a gateway: HSM, store and use cases (what `keys` CLI commands use too). */
export interface KeyRuntime {
  readonly hsm: Hsm;
  /** The HSM adapter itself, without the development latency wrapper (`hsm check` probes it). */
  readonly device: Hsm;
  readonly store: KeyStore;
  readonly keys: KeyService;
  /** Encryptions per key version (keys.usageLimit): the metric reads its samples. */
  readonly usage: UsageBudget;
  /** Automatic rotations (keys.usageLimit) are audited in `sink` from now on (they are logged anyway). */
  auditUsage(sink: AuditSink): void;
  /** Automatic rotations (keys.usageLimit) are also told to `then` (guided rotation records them). */
  onAutomaticRotation(
    then: (e: {
      instance: string;
      keyId: string;
      fromVersionId: string;
      toVersionId: string;
    }) => Promise<void>,
  ): void;
  /** The PostgreSQL connection when the store is PostgreSQL (identities and audit use it too). */
  readonly database?: PgDatabase | undefined;
  close(): Promise<void>;
}

/** What buildKeyRuntime needs besides the config; `hsm`, `store` and `clock` replace what it would build. */
export interface KeyRuntimeOptions {
  /** The file the config was read from: errors about the PIN or master key name it. */
  readonly configFile: string;
  readonly logger: Logger;
  /** Where `hsm.pin: {env: …}` is looked up (process.env when absent). */
  readonly env?: Readonly<Record<string, string | undefined>> | undefined;
  /** Make the store file if missing (`keys create` does for a first key); default store.createIfMissing. */
  readonly createStore?: boolean | undefined;
  /** The HSM device to use instead of the config's backend (still delayed by hsm.simulatedLatencyMs). */
  readonly hsm?: Hsm | undefined;
  /** The key store to use instead of the config's JSON file. */
  readonly store?: KeyStore | undefined;
  readonly clock?: Clock | undefined;
  /** Apply pending PostgreSQL migrations at open (default: store.postgres.migrate is auto). */
  readonly migrate?: boolean | undefined;
}

/** Builds the HSM adapter, the store and the key use cases from the config (or takes the given ones). */
export function buildKeyRuntime(config: GatewayConfig, options: KeyRuntimeOptions): KeyRuntime {
  const { configFile, logger } = options;
  const device: Hsm =
    options.hsm ??
    (config.hsm.backend === 'pkcs11'
      ? new Pkcs11Hsm({
          modulePath: config.hsm.module,
          libraryParameters: config.hsm.libraryParameters,
          tokenLabel: config.hsm.tokenLabel,
          pin: resolvePin(config, configFile, options.env ?? process.env),
          sessions: config.hsm.sessions,
          workerThreads: config.hsm.workerThreads,
          gcmIv: config.hsm.gcmIv,
          restrictMechanisms: config.hsm.restrictMechanisms,
          operationTimeoutMs: config.hsm.operationTimeout,
          maxHungCalls: config.hsm.maxHungCalls,
          requireLocal: config.hsm.requireLocal,
          random: systemRandom,
          logger: logger.child({ component: 'pkcs11' }),
        })
      : new SoftwareHsm(
          config.hsm.keyFile,
          readMasterKey(config.hsm.masterKeyFile, configFile),
          systemRandom,
          logger.child({ component: 'soft-hsm' }),
        ));
  if (config.hsm.backend === 'pkcs11' && config.hsm.deprecatedIvSource !== undefined) {
    logger.warn(
      { ivSource: config.hsm.deprecatedIvSource, gcmIv: config.hsm.gcmIv.mode },
      'hsm.ivSource is deprecated: write hsm.gcmIv instead (ivSource hsm was an IV from C_GenerateRandom passed in by the host, now gcmIv token-random; a module that generates its own IVs is gcmIv token-appended)',
    );
  }
  const simulated = config.hsm.simulatedLatencyMs ?? 0;
  let hsm = device;
  if (simulated > 0) {
    const channels = config.hsm.backend === 'pkcs11' ? config.hsm.sessions : 4;
    logger.warn(
      { latencyMs: simulated, channels },
      'hsm.simulatedLatencyMs is set: every HSM call is delayed (development and benchmarks only)',
    );
    hsm = new SimulatedLatencyHsm(device, simulated, channels);
  }
  const pgSettings = postgresStore(config);
  const database =
    pgSettings === undefined
      ? undefined
      : new PgDatabase({
          pool: poolConfig(pgSettings, configFile),
          describe: describeDatabase(pgSettings),
          logger: logger.child({ component: 'postgres' }),
          reconcileMs: pgSettings.reconcileInterval,
          migrate: options.migrate ?? pgSettings.migrate === 'auto',
        });
  const file = fileStore(config);
  const store =
    options.store ??
    (file === undefined
      ? new PostgresKeyStore(database as PgDatabase)
      : new JsonFileKeyStore(file.file, { createIfMissing: options.createStore ?? file.createIfMissing }));
  const limit = config.keys.usageLimit;
  const clock = options.clock ?? systemClock;
  const reporter = new UsageReporter(logger.child({ component: 'usage-limits' }), clock);
  const usage = new UsageBudget(
    {
      policy: limit.policy,
      warnAt: limit.warnAt,
      rotateAt: limit.rotateAt,
      blockSize: limit.blockSize,
      rotateAfterMs: limit.rotateAfter,
    },
    reporter.listener,
  );
  const keys = createKeyService({
    hsm,
    store,
    clock,
    random: systemRandom,
    usage,
    rewrapOnUnwrap: config.keys.rewrapOnUnwrap,
  });
  return {
    hsm,
    device,
    store,
    keys,
    usage,
    auditUsage: (sink) => reporter.auditTo(sink),
    onAutomaticRotation: (then) => reporter.onRotated(then),
    database,
    async close() {
      await store.close();
      await database?.close();
      await hsm.close();
    },
  };
}
