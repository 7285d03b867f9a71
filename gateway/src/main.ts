import type { Writable } from 'node:stream';
import { type Clock, systemClock } from '@keygate/shared';
import { asKeygateError } from '@keygate/shared/errors';
import { createLogger, type Logger } from '@keygate/shared/log';
import type { DestinationStream } from 'pino';
import { AllowlistPolicy, CertAllowlistAuthenticator } from './adapters/allowlist/cert-allowlist.js';
import { JwtTokens } from './adapters/jwt/jwt-tokens.js';
import { readSigningKeyFiles } from './adapters/jwt/signing-keys.js';
import type { PgDatabase } from './adapters/postgres/pg-database.js';
import { PgIdentities } from './adapters/postgres/pg-identities.js';
import { buildAuditSink } from './audit-runtime.js';
import { configIdentities } from './clusters/cluster-identities-runtime.js';
import { describeStore, type GatewayConfig, readTlsFiles, threadPoolSize } from './config.js';
import type { AuditSink } from './core/audit/audit-event.js';
import { RefusalSummary } from './core/audit/refusal-summary.js';
import type { IdentityAdmin, IdentitySource } from './core/auth/identity-source.js';
import type { AccessPolicy, Authenticator } from './core/auth/principal.js';
import { RolePolicy } from './core/auth/role-policy.js';
import { TokenAuthenticator } from './core/auth/token-authenticator.js';
import { TokenIssuer } from './core/auth/token-issuer.js';
import type { Hsm } from './core/keys/hsm.js';
import type { KeyStore } from './core/keys/key-store.js';
import { createGatewayLimits } from './core/limits/gateway-limits.js';
import { createApp } from './http/app.js';
import { ConnectionGuard } from './http/connection-guard.js';
import type { Readiness, TokenService } from './http/deps.js';
import { createGatewayMetrics } from './http/metrics.js';
import { type RunningServer, startHttpsServer } from './http/server.js';
import { buildKeyRuntime, type KeyRuntime } from './key-runtime.js';

/** Who may call: token mode (`identities` + `tokens`) or the development certificate allow-list. */
export interface AccessRuntime {
  readonly mode: 'tokens' | 'allowlist';
  readonly authenticator: Authenticator;
  readonly policy: AccessPolicy;
  /** Token mode only: `/identity/token` and the JWKS. */
  readonly tokens?: TokenService | undefined;
  /** Token mode with identities in PostgreSQL: run-time identity management (admin API). */
  readonly identityAdmin?: IdentityAdmin | undefined;
  /** Stops following identity changes. */
  close(): void;
  auditTo?(sink: AuditSink): void; // file-store clusters audit their changes (docs/clusters.md)
  /** Identities from the database: not ready until loaded (every token is refused before). */
  identitiesStatus?(): { readonly ready: boolean; readonly reasons: readonly string[] };
}

/**
 * Builds the authenticator and policy from the config (reads the token signing keys). Token mode
 * takes its identities from the config's `identities:`, or, when that is absent and the store is
 * PostgreSQL, from the database (managed at run time; docs/identity.md "PostgreSQL").
 */
export async function buildAccess(
  config: GatewayConfig,
  clock: Clock = systemClock,
  database?: PgDatabase,
  logger?: Logger,
): Promise<AccessRuntime> {
  if (config.tokens === undefined || (config.identities === undefined && database === undefined)) {
    return {
      mode: 'allowlist',
      authenticator: new CertAllowlistAuthenticator(config.access.clients),
      policy: new AllowlistPolicy(),
      close: () => undefined,
    };
  }
  const t = config.tokens;
  const leewaySeconds = Math.round(t.leeway / 1000);
  const signingKeys = await readSigningKeyFiles(t.signingKeyFiles);
  const jwt = new JwtTokens({
    keys: signingKeys,
    issuer: t.issuer,
    audience: t.audience,
    clock,
    leewaySeconds,
  });
  const fromConfig = configIdentities(config, logger); // plus onboarded clusters on the file store
  let identities: IdentitySource | undefined = fromConfig?.source;
  let pg: PgIdentities | undefined;
  if (identities === undefined) {
    pg = new PgIdentities(database as PgDatabase, {
      logger: (logger ?? createLogger({ level: 'silent', name: 'keygate-gateway' })).child({
        component: 'identities',
      }),
      signingKids: signingKeys.map((k) => k.kid),
    });
    identities = pg;
    // Loads once the database is open (and again on every change any replica announces).
    void pg.start();
  }
  const issuer = new TokenIssuer({
    identities,
    signer: jwt,
    clock,
    lifetimeSeconds: Math.round(t.lifetime / 1000),
  });
  const authenticator = new TokenAuthenticator({ verifier: jwt, clock, leewaySeconds, identities });
  return {
    mode: 'tokens',
    authenticator,
    policy: new RolePolicy(),
    tokens: { issue: (req) => issuer.issue(req), jwks: () => jwt.jwks() },
    identityAdmin: pg,
    ...(pg === undefined
      ? {}
      : {
          identitiesStatus: () =>
            pg?.loaded === true
              ? { ready: true, reasons: [] }
              : {
                  ready: false,
                  reasons: [
                    'identities not loaded from the database yet (tokens are refused until they are)',
                  ],
                },
        }),
    ...(fromConfig?.auditTo === undefined ? {} : { auditTo: fromConfig.auditTo }),
    close() {
      authenticator.close();
      pg?.close();
      fromConfig?.close();
    },
  };
}

/** What startGateway takes besides the config; each part given replaces the one it would build. */
export interface GatewayDeps {
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
    metrics: createGatewayMetrics(
      readiness,
      () => ({
        ...limits.admission.stats,
        summarised: refusals.summarised,
        connections: connections.stats,
        connectionsRefused: connections.refused,
      }),
      true,
      () => runtime.usage.samples(),
    ),
    clock,
    readiness,
    bodyLimitBytes: config.server.bodyLimitBytes,
    logRequests: config.log.requests,
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
    });
  } catch (err) {
    clearInterval(summaryTimer);
    access.close();
    await audit.close().catch(() => undefined);
    await runtime.close();
    throw err;
  }
  const ready = readiness();
  logger.info(
    {
      url: server.url,
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
    runtime,
    logger,
    async close() {
      try {
        await server.close();
        clearInterval(summaryTimer);
        await refusals.flushAll();
        // After the drain: the last appends are durable, then a signed close checkpoint seals the log.
        await audit.close().catch((err: unknown) => {
          logger.error({ err: asKeygateError(err).toLog() }, 'audit close failed');
        });
      } finally {
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

/** Where audit records go, for the start log line: the folder, `postgres`, or undefined. */
function auditTarget(config: GatewayConfig): string | undefined {
  return config.audit?.target === 'postgres' ? 'postgres' : config.audit?.dir;
}
