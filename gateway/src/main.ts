import type { Writable } from 'node:stream';
import { type Clock, systemClock } from '@keygate/shared';
import { systemRandom } from '@keygate/shared/crypto';
import { asKeygateError } from '@keygate/shared/errors';
import { createLogger, type Logger } from '@keygate/shared/log';
import type { DestinationStream } from 'pino';
import { CertAllowlistAuthenticator, RoleAccessPolicy } from './adapters/allowlist/cert-allowlist.js';
import { JwtTokens } from './adapters/jwt/jwt-tokens.js';
import { readSigningKeyFiles } from './adapters/jwt/signing-keys.js';
import { Pkcs11Hsm } from './adapters/pkcs11/pkcs11-hsm.js';
import { SimulatedLatencyHsm } from './adapters/sim/simulated-latency-hsm.js';
import { SoftHsm } from './adapters/soft/soft-hsm.js';
import { JsonFileKeyStore } from './adapters/store/json-file-store.js';
import { buildAuditSink } from './audit-runtime.js';
import { type GatewayConfig, loadGatewayConfig, readMasterKey, readTlsFiles, resolvePin } from './config.js';
import type { AuditSink } from './core/audit/audit-event.js';
import { RefusalSummary } from './core/audit/refusal-summary.js';
import { IdentityDirectory } from './core/auth/identity-directory.js';
import type { AccessPolicy, Authenticator } from './core/auth/principal.js';
import { RolePolicy } from './core/auth/role-policy.js';
import { TokenAuthenticator } from './core/auth/token-authenticator.js';
import { TokenIssuer } from './core/auth/token-issuer.js';
import type { Hsm } from './core/keys/hsm.js';
import { createKeyService, type KeyService } from './core/keys/key-service.js';
import type { KeyStore } from './core/keys/key-store.js';
import { createGatewayLimits } from './core/limits/gateway-limits.js';
import { createApp } from './http/app.js';
import { ConnectionGuard } from './http/connection-guard.js';
import type { Readiness, TokenService } from './http/deps.js';
import { createGatewayMetrics } from './http/metrics.js';
import { type RunningServer, startHttpsServer } from './http/server.js';

/** The key side of a gateway: HSM, store and use cases (what `keys` CLI commands use too). */
export interface KeyRuntime {
  readonly hsm: Hsm;
  readonly store: KeyStore;
  readonly keys: KeyService;
  close(): Promise<void>;
}

/** Builds the HSM adapter and the store from the config. */
export function buildKeyRuntime(
  config: GatewayConfig,
  configFile: string,
  logger: Logger,
  env: Readonly<Record<string, string | undefined>> = process.env,
  /** `keys create` may make the store file even when the config does not say so (a first key). */
  createStore = config.store.createIfMissing,
): KeyRuntime {
  const device: Hsm =
    config.hsm.backend === 'pkcs11'
      ? new Pkcs11Hsm({
          modulePath: config.hsm.module,
          tokenLabel: config.hsm.tokenLabel,
          pin: resolvePin(config, configFile, env),
          sessions: config.hsm.sessions,
          workerThreads: config.hsm.workerThreads,
          ivSource: config.hsm.ivSource,
          random: systemRandom,
          logger: logger.child({ component: 'pkcs11' }),
        })
      : new SoftHsm(
          config.hsm.keyFile,
          readMasterKey(config.hsm.masterKeyFile, configFile),
          systemRandom,
          logger.child({ component: 'soft-hsm' }),
        );
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
  const store = new JsonFileKeyStore(config.store.file, { createIfMissing: createStore });
  const keys = createKeyService({ hsm, store, clock: systemClock, random: systemRandom });
  return {
    hsm,
    store,
    keys,
    async close() {
      await store.close();
      await hsm.close();
    },
  };
}

/** Who may call: token mode (`identities` + `tokens`) or the development certificate allow-list. */
export interface AccessRuntime {
  readonly mode: 'tokens' | 'allowlist';
  readonly authenticator: Authenticator;
  readonly policy: AccessPolicy;
  /** Token mode only: `/identity/token` and the JWKS. */
  readonly tokens?: TokenService | undefined;
}

/** Builds the authenticator and policy from the config (reads the token signing keys). */
export async function buildAccess(config: GatewayConfig, clock: Clock = systemClock): Promise<AccessRuntime> {
  if (config.identities === undefined || config.tokens === undefined) {
    return {
      mode: 'allowlist',
      authenticator: new CertAllowlistAuthenticator(config.access.clients),
      policy: new RoleAccessPolicy(),
    };
  }
  const t = config.tokens;
  const leewaySeconds = Math.round(t.leeway / 1000);
  const jwt = new JwtTokens({
    keys: await readSigningKeyFiles(t.signingKeyFiles),
    issuer: t.issuer,
    audience: t.audience,
    clock,
    leewaySeconds,
  });
  const issuer = new TokenIssuer({
    identities: new IdentityDirectory(config.identities),
    signer: jwt,
    clock,
    lifetimeSeconds: Math.round(t.lifetime / 1000),
  });
  return {
    mode: 'tokens',
    authenticator: new TokenAuthenticator({ verifier: jwt, clock, leewaySeconds }),
    policy: new RolePolicy(),
    tokens: { issue: (req) => issuer.issue(req), jwks: () => jwt.jwks() },
  };
}

export interface StartOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Log destination (stdout when absent); tests capture lines here. */
  readonly logDestination?: DestinationStream;
  /** Audit sink; when absent, built from the config's `audit` section (see buildAuditSink). */
  readonly audit?: AuditSink;
  /** Where `audit.stdout` copies the audit record lines (process.stdout when absent). */
  readonly auditStream?: Writable;
}

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

/** Starts a gateway from a config file: the one composition root of the process. */
export async function startGateway(configFile: string, options: StartOptions = {}): Promise<RunningGateway> {
  const config = loadGatewayConfig(configFile);
  const logger = createLogger({
    level: config.log.level,
    name: 'keygate-gateway',
    ...(options.logDestination ? { destination: options.logDestination } : {}),
  });
  const tls = readTlsFiles(config, configFile);
  const access = await buildAccess(config);
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
  const audit = options.audit ?? (await buildAuditSink(config, configFile, logger, options.auditStream));
  let runtime: KeyRuntime;
  try {
    runtime = buildKeyRuntime(config, configFile, logger, options.env ?? process.env);
  } catch (err) {
    await audit.close().catch(() => undefined);
    throw err;
  }
  await runtime.store.open();
  const readiness = (): Readiness => ({ hsm: runtime.hsm.status(), store: runtime.store.status() });
  const clockMs = () => systemClock.now().getTime();
  const limits = createGatewayLimits(config.limits, clockMs);
  const connections = new ConnectionGuard(config.server.perSource);
  const refusals = new RefusalSummary({
    sink: audit,
    clock: systemClock,
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
    audit,
    refusals,
    limits,
    logger,
    metrics: createGatewayMetrics(readiness, () => ({
      ...limits.admission.stats,
      summarised: refusals.summarised,
      connections: connections.stats,
      connectionsRefused: connections.refused,
    })),
    clock: systemClock,
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
    await audit.close().catch(() => undefined);
    await runtime.close();
    throw err;
  }
  const ready = readiness();
  logger.info(
    {
      url: server.url,
      hsm: ready.hsm,
      store: config.store.file,
      access: access.mode,
      audit: config.audit?.dir ?? (options.audit ? 'custom' : 'log'),
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
        await runtime.close();
      }
      logger.info('gateway stopped');
    },
  };
}

/** `keygate-gateway serve`: starts, then on SIGTERM/SIGINT drains and exits. */
export async function runServe(configFile: string): Promise<void> {
  const gw = await startGateway(configFile);
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
