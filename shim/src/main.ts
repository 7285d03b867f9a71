import {
  type Clock,
  isKeygateError,
  type Logger,
  type Random,
  systemClock,
  systemRandom,
} from '@keygate/shared';
import { createLogger } from '@keygate/shared/log';
import type { ShimSettings } from './config.js';
import { GatewayLimiter } from './core/gateway-limiter.js';
import { KmsCore } from './core/kms-core.js';
import type { GatewayClient } from './core/ports.js';
import { UndiciGatewayClient, type UndiciGatewayOptions } from './gateway-client/undici-gateway.js';
import { type KmsServer, startKmsServer } from './grpc/kms-server.js';
import { normaliseSocketPath, prepareSocketPath } from './grpc/socket-file.js';
import { type HealthServer, startHealthServer } from './http/health-server.js';
import { ShimMetrics } from './metrics.js';
import { shimReportHeader } from './report.js';

export const RUNTIME = { name: 'keygate-shim', version: '0.1.0' } as const;

/** Injectable parts, for tests and e2e (defaults: the undici client, the system clock and CSPRNG). */
export interface ShimDeps {
  readonly logger?: Logger;
  readonly gateway?: GatewayClient;
  readonly clock?: Clock;
  readonly random?: Random;
  /** Host of the health server (default 127.0.0.1); HEALTHZ_PORT 0 picks a free port. */
  readonly healthHost?: string;
  /** Skip the health server entirely. */
  readonly noHealthServer?: boolean;
}

export interface RunningShim {
  readonly socketPath: string;
  /** The health server's port (undefined when disabled). */
  readonly healthPort: number | undefined;
  readonly core: KmsCore;
  readonly metrics: ShimMetrics;
  /** Drains in-flight calls, removes the socket, stops timers and zeroes every DEK. */
  close(): Promise<void>;
}

/**
 * The gateway client's settings from the config: URLs, identity, TLS, retries, deadline and
 * breaker. The metric hooks are the caller's (`serve` has them, `check` does not).
 */
export function gatewayClientOptions(settings: ShimSettings): UndiciGatewayOptions {
  return {
    urls: settings.gatewayUrls,
    instanceId: settings.instanceId,
    crkId: settings.crkId,
    tokenUrl: settings.tokenUrl,
    apiKey: settings.apiKey,
    tls: settings.tls,
    tokenTls: settings.tokenTls,
    maxRetries: settings.maxRetries,
    deadlineMs: settings.deadlineMs,
    breaker: settings.breaker,
    http2: settings.gatewayHttp2,
    connections: settings.gatewayConnections,
  };
}

/** While unhealthy, the key_id refresh polls at least this often (as apiserver does). */
const UNHEALTHY_REFRESH_MS = 10_000;

/**
 * Composition root: builds the gateway client (behind the limiter), the core, the gRPC server on
 * the UNIX socket, the health and metrics server and the background refresh, and returns a handle
 * to stop them. When any part fails to start, everything already opened is closed again (the
 * socket file removed, DEKs zeroed) before the error is thrown.
 */
export async function startShim(settings: ShimSettings, deps: ShimDeps = {}): Promise<RunningShim> {
  const logger = deps.logger ?? createLogger({ level: settings.logLevel, name: 'keygate-shim' });
  const clock = deps.clock ?? systemClock;
  let core: KmsCore | undefined;
  let limiter: GatewayLimiter | undefined;
  const metrics = new ShimMetrics(
    () => core,
    () => limiter?.stats(),
  );
  const ownGateway = deps.gateway === undefined;
  const client =
    deps.gateway === undefined
      ? new UndiciGatewayClient({
          ...gatewayClientOptions(settings),
          onOutcome: metrics.onGatewayOutcome,
          onBreaker: (url, state) => {
            metrics.onBreaker(url, state);
            logger.warn({ url, state }, 'gateway circuit breaker changed');
          },
        })
      : undefined;
  const gateway: GatewayClient = deps.gateway ?? (client as UndiciGatewayClient);
  // Every gateway URL shows a breaker state from the start, not only after its first change.
  for (const url of settings.gatewayUrls) metrics.onBreaker(url.replace(/\/+$/, ''), 'closed');
  limiter = new GatewayLimiter(gateway, {
    maxInFlight: settings.maxGatewayCalls,
    deadlineMs: settings.deadlineMs,
    clock,
    onReject: metrics.onGatewayRejected,
  });
  const kmsCore = new KmsCore({
    instanceId: settings.instanceId,
    crkId: settings.crkId,
    alg: settings.alg,
    dekBytes: settings.dekBytes,
    newDekPerEncrypt: settings.newDekPerEncrypt,
    dekLimits: settings.dekLimits,
    cacheSize: settings.cacheSize,
    cacheTtlMs: settings.cacheTtlMs,
    gateway: limiter,
    clock,
    random: deps.random ?? systemRandom,
    events: {
      keyIdChanged: (from, to) => logger.info({ from: from ?? null, to }, 'key_id changed'),
      healthChanged: (healthz) => logger.info({ healthz }, 'health changed'),
    },
  });
  core = kmsCore;

  let stopped = false;
  let refreshTimer: NodeJS.Timeout | undefined;
  let sweepTimer: NodeJS.Timeout | undefined;
  let grpc: KmsServer | undefined;
  let health: HealthServer | undefined;
  const refreshEveryMs = settings.keyIdRefreshMs;
  // After each refresh, the fleet report (docs/fleet.md) rides on the next gateway call.
  const refreshAndReport = async () => {
    await kmsCore.refresh();
    const header = shimReportHeader(settings.nodeName, RUNTIME.version, kmsCore);
    if (header !== undefined) client?.reportOnNextCall(header);
  };
  const scheduleRefresh = () => {
    if (stopped) return;
    const healthy = kmsCore.status().healthz === 'ok';
    refreshTimer = setTimeout(
      () => {
        void refreshAndReport().finally(scheduleRefresh);
      },
      healthy ? refreshEveryMs : Math.min(refreshEveryMs, UNHEALTHY_REFRESH_MS),
    );
    refreshTimer.unref();
  };
  /** Closes whatever is open, in reverse order of opening; never throws. */
  const stop = async (graceMs: number): Promise<void> => {
    stopped = true;
    clearTimeout(refreshTimer);
    clearInterval(sweepTimer);
    const quietly = async (what: string, fn: () => Promise<void> | void) => {
      try {
        await fn();
      } catch (err) {
        logger.warn({ err: String(err), what }, 'close failed');
      }
    };
    await quietly('grpc', () => grpc?.close(graceMs)); // removes the socket file
    await quietly('health', () => health?.close());
    kmsCore.close();
    if (ownGateway) await quietly('gateway', () => gateway.close());
  };

  const socketPath = normaliseSocketPath(settings.socketPath);
  // The first refresh (a token, then one wrap that tells the key_id) runs while the socket is
  // prepared and bound, not before: kube-apiserver needs no key_id to send a Decrypt of existing
  // data, and a Decrypt that comes meanwhile shares the refresh's token fetch (single flight).
  // A Status in that window says "no key_id yet: starting", which kube-apiserver takes as one
  // failed probe and polls again (../shared/design/kms-apiserver-behaviour.md, 4.1); before, it
  // found no socket for the whole start. startShim still resolves once the refresh is done.
  const firstRefresh = refreshAndReport().catch((err: unknown) => {
    logger.warn({ err: String(err) }, 'first key_id refresh failed');
  });
  try {
    // The socket is served last, once everything that can fail has started: a shim that cannot
    // start (a taken health port, say) never shows kube-apiserver a socket that then disappears.
    // A live shim on the socket is still found first (SOCKET_IN_USE is final, not retried).
    await prepareSocketPath(socketPath);
    if (!deps.noHealthServer) {
      health = await startHealthServer({
        host: deps.healthHost ?? '127.0.0.1',
        port: settings.healthzPort,
        healthzPath: settings.healthzPath,
        deepCheck: () => kmsCore.roundTrip(),
        live: () => !stopped,
        registry: metrics.registry,
      });
    }
    grpc = await startKmsServer({
      core: kmsCore,
      socketPath,
      socketMode: settings.socketMode,
      logger,
      logAllValues: settings.logAllValues,
      runtime: RUNTIME,
      onCall: metrics.onCall,
    });
    // The line ICP operators look for: the gRPC server listens (kube-apiserver can connect).
    logger.info({ socket: socketPath, services: ['v2', 'v1beta1'] }, 'KMS provider server started');
    await firstRefresh;
    scheduleRefresh();
    sweepTimer = setInterval(() => kmsCore.sweep(), 60_000);
    sweepTimer.unref();
  } catch (err) {
    await stop(0);
    await firstRefresh; // fails fast once the gateway client is closed; never rejects
    throw err;
  }
  const status = kmsCore.status();
  logger.info(
    {
      socket: socketPath,
      healthPort: health?.port,
      keyId: status.keyId,
      healthz: status.healthz,
      gateways: settings.gatewayUrls,
      newDek: settings.newDekPerEncrypt,
      version: RUNTIME.version,
    },
    'keygate shim started',
  );
  return {
    socketPath,
    healthPort: health?.port,
    core: kmsCore,
    metrics,
    async close() {
      if (stopped) return;
      await stop(settings.shutdownGraceMs);
    },
  };
}

/** Start attempts in all (the first one and its retries) before the process gives up and exits. */
export const MAX_START_ATTEMPTS = 3;

/**
 * Runs the shim until SIGTERM or SIGINT: drains in-flight calls, removes the socket and resolves.
 * A start failure other than the config or a live socket (a taken health port, say) is tried
 * again after RESTART_DELAY_IN_SECONDS, MAX_START_ATTEMPTS times in all; then, or at once for
 * those two, it logs a fatal line with the error code and resolves with 1, so that the process
 * exits and its supervisor (kubelet, systemd) restarts it. Resolves with the process exit code.
 */
export async function runShim(settings: ShimSettings, deps: ShimDeps = {}): Promise<number> {
  const logger = deps.logger ?? createLogger({ level: settings.logLevel, name: 'keygate-shim' });
  const delayMs = settings.restartDelayMs;
  let shim: RunningShim | undefined;
  let signalled: string | undefined;
  let wake: (() => void) | undefined;
  const onSignal = (signal: string) => {
    signalled = signal;
    wake?.();
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  // The other line ICP operators look for: a SIGTERM now drains and exits cleanly.
  logger.info({ signals: ['SIGTERM', 'SIGINT'] }, 'SIGTERM handler started');
  try {
    for (let attempt = 1; !signalled; attempt++) {
      try {
        shim = await startShim(settings, { ...deps, logger });
        break;
      } catch (err) {
        const code = isKeygateError(err) ? err.code : 'INTERNAL_ERR';
        const log = { code, attempt, err: isKeygateError(err) ? err.toLog() : String(err) };
        if (code === 'CONFIG_INVALID' || code === 'SOCKET_IN_USE' || attempt >= MAX_START_ATTEMPTS) {
          logger.fatal(log, 'cannot start');
          return 1;
        }
        logger.error({ ...log, retryInMs: delayMs }, 'start failed');
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((r) => {
          wake = r;
          timer = setTimeout(r, delayMs);
        });
        clearTimeout(timer); // a signal woke it: the timer must not hold the process open
      }
    }
    if (!signalled) await new Promise<void>((r) => (wake = r));
    logger.info({ signal: signalled }, 'signal received: draining in-flight calls');
    await shim?.close();
    logger.info('keygate shim stopped');
    return 0;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
