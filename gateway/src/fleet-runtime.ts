import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import type { Clock } from '@keygate/shared';
import { asKeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import { FleetFileStore } from './adapters/fleet/fleet-file-store.js';
import type { PgDatabase } from './adapters/postgres/pg-database.js';
import { PgFleetStore } from './adapters/postgres/pg-fleet-store.js';
import { fileStore, type GatewayConfig } from './config.js';
import type { FleetStore } from './core/fleet/fleet.js';

export { withFleetMetrics } from './http/fleet-metrics.js';

/** The fleet of a gateway (docs/fleet.md): its store, this replica's name and the staleness rule. */
export interface FleetRuntime {
  readonly store: FleetStore;
  /** This replica's name in node records (audit.replica, else the host name). */
  readonly replica: string;
  /** A node is stale once its last report is older than this (fleet.staleAfter). */
  readonly staleAfterMs: number;
  /** Stops the flush timer and writes what is buffered (after the HTTP server stopped). */
  close(): Promise<void>;
}

export interface FleetRuntimeOptions {
  /** The key runtime's database with store.postgres (the fleet lives in it). */
  readonly database?: PgDatabase | undefined;
  readonly logger: Logger;
  readonly clock?: Clock | undefined;
  /** Read only (the `fleet` CLI): no flush timer, never writes the file store's fleet.json. */
  readonly readOnly?: boolean;
}

/** `fleet.json` beside the key store file. */
export function fleetFilePath(storeFile: string): string {
  return join(dirname(storeFile), 'fleet.json');
}

/**
 * Builds the fleet store the config calls for: PostgreSQL (shared by replicas) when the store is
 * store.postgres, else `fleet.json` beside the key store file. Starts the flush timer
 * (fleet.flushInterval) unless read only; a failed flush is logged and retried at the next tick.
 */
export async function buildFleetStore(
  config: GatewayConfig,
  options: FleetRuntimeOptions,
): Promise<FleetRuntime> {
  const f = config.fleet;
  const log = options.logger.child({ component: 'fleet' });
  const now = options.clock === undefined ? undefined : () => (options.clock as Clock).now();
  const file = fileStore(config);
  let store: FleetStore;
  if (file !== undefined) {
    store = await FleetFileStore.open(fleetFilePath(file.file), {
      logger: log,
      usageRetentionMs: f.usageRetention,
      readOnly: options.readOnly ?? false,
      ...(now === undefined ? {} : { now }),
    });
  } else if (options.database !== undefined) {
    store = new PgFleetStore(options.database, {
      usageRetentionMs: f.usageRetention,
      readOnly: options.readOnly ?? false,
      ...(now === undefined ? {} : { now }),
    });
  } else {
    throw new Error('store.postgres without a database');
  }
  const replica = (config.audit?.target === 'postgres' ? config.audit.replica : undefined) ?? hostname();
  let timer: NodeJS.Timeout | undefined;
  let failing = false;
  let dropped = 0;
  if (options.readOnly !== true) {
    timer = setInterval(() => {
      store.flush().then(
        () => {
          if (failing) log.info('fleet flush works again');
          failing = false;
          if (store instanceof PgFleetStore && store.dropped > dropped) {
            log.warn({ uses: store.dropped - dropped }, 'fleet use counts dropped: the buffer was full');
            dropped = store.dropped;
          }
        },
        (err: unknown) => {
          // Once per outage: the buffer is kept and written at the next tick that works.
          if (!failing) log.warn({ err: asKeygateError(err).toLog() }, 'fleet flush failed');
          failing = true;
        },
      );
    }, f.flushInterval);
    timer.unref();
  }
  return {
    store,
    replica,
    staleAfterMs: f.staleAfter,
    async close() {
      clearInterval(timer);
      await store.close().catch((err: unknown) => {
        log.warn({ err: asKeygateError(err).toLog() }, 'fleet close: last flush failed');
      });
    },
  };
}
