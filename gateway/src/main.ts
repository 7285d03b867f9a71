import type { Writable } from 'node:stream';
import { type Clock, systemClock } from '@keygate/shared';
import { asKeygateError } from '@keygate/shared/errors';
import { createLogger, type Logger } from '@keygate/shared/log';
import type { DestinationStream } from 'pino';
import { type AccessRuntime, buildAccess } from './access-runtime.js';
import { auditTarget, buildAuditSink } from './audit-runtime.js';
import { describeStore, type GatewayConfig, readTlsFiles, threadPoolSize } from './config.js';
import { type RunningConsole, startConsole } from './console-runtime.js';
import type { AuditSink } from './core/audit/audit-event.js';
import { RefusalSummary } from './core/audit/refusal-summary.js';
import { disableVersionGuarded } from './core/fleet/version-guard.js';
import type { Hsm } from './core/keys/hsm.js';
import type { KeyStore } from './core/keys/key-store.js';
import { createGatewayLimits } from './core/limits/gateway-limits.js';
import { buildFleetStore, withFleetMetrics } from './fleet-runtime.js';
import { createApp } from './http/app.js';
import { ConnectionGuard } from './http/connection-guard.js';
import type { Readiness } from './http/deps.js';
import { createGatewayMetrics } from './http/metrics.js';
import { type RunningServer, startHttpsServer } from './http/server.js';
import { buildKeyRuntime, type KeyRuntime } from './key-runtime.js';
import { type RotationGatewayDeps, rotationDeps } from './rotation-runtime.js';

/** What startGateway takes besides the config; each part given replaces the one it would build. */
export interface GatewayDeps extends RotationGatewayDeps {
  /** The file the config was read from: errors about the files it names say so. */
  readonly configFile?: string;
  /** Where `hsm.pin: {env: …}` is looked up (process.env when absent). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Log destination (stdout when absent); tests capture lines here. */
  readonly logDestination?: DestinationStream;
  /** HSM device; when absent, built from the config's `hsm` section (see buildKeyRuntime). */
  readonly hsm?: Hsm;
  /** Key store; when absent, the config's JSON file. */
  readonly store?: KeyStore;
  /** Time for tokens, key dates, limits and audit records (the system clock when absent). */
  readonly clock?: Clock;
  /** Audit sink; when absent, built from the config's `audit` section (see buildAuditSink). */
  readonly audit?: AuditSink;
  /** Where `audit.stdout` copies the audit record lines (process.stdout when absent). */
  readonly auditStream?: Writable;
}

/** Named in config errors when startGateway is not told which file the config came from. */
const UNNAMED_CONFIG = '(config passed to startGateway)';

/** A running gateway. */
export interface RunningGateway {
  readonly url: string;
  readonly port: number;
  /** The web console's URL when `console.listen` is set (docs/console.md). */
  readonly consoleUrl?: string | undefined;
  readonly runtime: KeyRuntime;
  readonly logger: Logger;
  /** Stops accepting, drains requests in flight, closes the audit sink and the HSM. */
  close(): Promise<void>;
}

/** Token lifetimes below this make Key Protect clients (60 s renewal margin) fetch tokens constantly. */
const SHORT_TOKEN_LIFETIME_MS = 5 * 60_000;

/**
 * The libuv pool must run a PKCS#11 call per session at once. It starts on first use, so this
 * takes effect only before any async work of the process; it never lowers a size already set.
 */
export function reserveThreadPool(config: GatewayConfig): void {
  const wanted = threadPoolSize(config);
  if (Number(process.env.UV_THREADPOOL_SIZE ?? 4) < wanted) process.env.UV_THREADPOOL_SIZE = String(wanted);
}

/**
 * Starts a gateway from a validated config (see loadGatewayConfig): the one composition root of
 * the process. Builds the adapters `deps` does not give.
 */
export async function startGateway(config: GatewayConfig, deps: GatewayDeps = {}): Promise<RunningGateway> {
  reserveThreadPool(config);
  const configFile = deps.configFile ?? UNNAMED_CONFIG;
  const clock = deps.clock ?? systemClock;
  const logger = createLogger({
    level: config.log.level,
    name: 'keygate-gateway',
    ...(deps.logDestination ? { destination: deps.logDestination } : {}),
  });
  const tls = readTlsFiles(config, configFile);
  // The key runtime first: with PostgreSQL, identities and the audit chain live in its database.
  const runtime = buildKeyRuntime(config, {
    configFile,
    logger,
    env: deps.env,
    hsm: deps.hsm,
    store: deps.store,
    clock,
  });
  let access: AccessRuntime;
  let accessBuilt: AccessRuntime | undefined;
  let audit: AuditSink;
  try {
    access = await buildAccess(config, clock, runtime.database, logger);
    accessBuilt = access;
    audit =
      deps.audit ??
      (await buildAuditSink(config, configFile, logger, deps.auditStream, clock, runtime.database));
  } catch (err) {
    accessBuilt?.close();
    await runtime.close().catch(() => undefined);
    throw err;
  }
  if (access.mode === 'allowlist') {
    logger.warn(
      'no identities in the config: certificate allow-list mode (development only); /identity/token answers 404',
    );
  } else if ((config.tokens?.lifetime ?? Number.POSITIVE_INFINITY) < SHORT_TOKEN_LIFETIME_MS) {
    // IBM's Key Protect clients renew 60 s before expiry: at 1m they fetch a token per call (docs/api.md).
    logger.warn(
      { lifetimeMs: config.tokens?.lifetime },
      'tokens.lifetime is under 5 minutes: Key Protect clients renew 60 s before expiry, so they will ask for a token on almost every call',
    );
  }
  runtime.auditUsage(audit);
  access.auditTo?.(audit);
  await runtime.store.open();
  const fleet = await buildFleetStore(config, { database: runtime.database, logger, clock });
  const fleetStore = deps.fleet ?? fleet.store; // tests may bring their own
  // `clusters remove` on the file store: this gateway owns fleet.json, so it forgets the nodes.
  access.onClusterRemoved?.((name) => void fleetStore.forgetCluster(name).catch(() => undefined));
  const readiness = (): Readiness => {
    const store = runtime.store.status();
    const identities = access.identitiesStatus?.();
    return {
      hsm: runtime.hsm.status(),
      store:
        identities === undefined || identities.ready
          ? store
          : { ready: false, reasons: [...store.reasons, ...identities.reasons] },
    };
  };
  const clockMs = () => clock.now().getTime();
  const limits = createGatewayLimits(config.limits, clockMs);
  const connections = new ConnectionGuard(config.server.perSource);
  const refusals = new RefusalSummary({
    sink: audit,
    clock,
    windowMs: config.limits.refusalSummaryWindow,
    onError: (err) => logger.error({ err: asKeygateError(err).toLog() }, 'audit summary append failed'),
  });
  const summaryTimer = setInterval(
    () => refusals.flushEnded(),
    Math.max(250, Math.min(10_000, config.limits.refusalSummaryWindow / 4)),
  );
  summaryTimer.unref();
  const metrics = createGatewayMetrics(
    readiness,
    () => ({
      ...limits.admission.stats,
      summarised: refusals.summarised,
      connections: connections.stats,
      connectionsRefused: connections.refused,
    }),
    true,
    () => runtime.usage.samples(),
  );
  const rotation = rotationDeps(config, runtime, clock, fleetStore, fleet.staleAfterMs, logger);
  const app = createApp({
    keys: runtime.keys,
    authenticator: access.authenticator,
    policy: access.policy,
    tokens: access.tokens,
    identityAdmin: access.identityAdmin,
    audit,
    refusals,
    limits,
    logger,
    metrics,
    fleet: withFleetMetrics({ ...fleet, store: fleetStore }, metrics.registry, clock),
    clock,
    readiness,
    bodyLimitBytes: config.server.bodyLimitBytes,
    logRequests: config.log.requests,
    ...rotation,
  });
  let server: RunningServer;
  try {
    server = await startHttpsServer(app, {
      host: config.server.host,
      port: config.server.port,
      ...tls,
      keepAliveTimeoutMs: config.server.keepAliveTimeoutMs,
      headersTimeoutMs: config.server.headersTimeoutMs,
      requestTimeoutMs: config.server.requestTimeoutMs,
      handshakeTimeoutMs: config.server.handshakeTimeoutMs,
      maxConnections: config.server.maxConnections,
      guard: connections,
      drainMs: config.server.drainMs,
      http2: config.server.http2,
    });
  } catch (err) {
    clearInterval(summaryTimer);
    access.close();
    await fleet.close();
    await audit.close().catch(() => undefined);
    await runtime.close();
    throw err;
  }
  let consoleServer: RunningConsole | undefined;
  try {
    consoleServer = await startConsole(config, {
      runtime,
      tls,
      identities: access.identities,
      identityAdmin: access.identityAdmin,
      audit,
      readiness,
      clock,
      logger,
      fleet: fleetStore,
      staleAfterMs: fleet.staleAfterMs,
      rotation: rotation.rotations,
      versions: {
        disableVersion: async (i, id, v, o) =>
          (
            await disableVersionGuarded(
              { keys: runtime.keys, rotations: rotation.rotations },
              i,
              id,
              v,
              o.force,
            )
          ).key,
        enableVersion: (i, id, v) => runtime.keys.enableVersion(i, id, v),
      },
    });
  } catch (err) {
    await server.close();
    clearInterval(summaryTimer);
    access.close();
    await fleet.close();
    await audit.close().catch(() => undefined);
    await runtime.close();
    throw err;
  }
  const ready = readiness();
  logger.info(
    {
      url: server.url,
      ...(consoleServer === undefined ? {} : { console: consoleServer.url }),
      hsm: ready.hsm,
      store: describeStore(config),
      access: access.mode,
      audit: auditTarget(config) ?? (deps.audit ? 'custom' : 'log'),
    },
    'gateway listening',
  );
  return {
    url: server.url,
    port: server.port,
    consoleUrl: consoleServer?.url,
    runtime,
    logger,
    async close() {
      try {
        await consoleServer?.close();
        await server.close();
        clearInterval(summaryTimer);
        await refusals.flushAll();
        // After the drain: the last appends are durable, then a signed close checkpoint seals the log.
        await audit.close().catch((err: unknown) => {
          logger.error({ err: asKeygateError(err).toLog() }, 'audit close failed');
        });
      } finally {
        await fleet.close(); // after the drain; never throws (a failed last flush is logged)
        access.close();
        await runtime.close();
      }
      logger.info('gateway stopped');
    },
  };
}

/** `keygate-gateway serve`: starts, then on SIGTERM/SIGINT drains and exits. */
export async function runServe(config: GatewayConfig, configFile: string): Promise<void> {
  const gw = await startGateway(config, { configFile });
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    gw.logger.info({ signal }, 'stopping');
    gw.close().then(
      () => process.exit(0),
      (err: unknown) => {
        gw.logger.error({ err }, 'stop failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
