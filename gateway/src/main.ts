import { systemRandom } from '@keygate/shared/crypto';
import { createLogger, type Logger } from '@keygate/shared/log';
import type { DestinationStream } from 'pino';
import { CertAllowlistAuthenticator, RoleAccessPolicy } from './adapters/allowlist/cert-allowlist.js';
import { LogAuditSink } from './adapters/log-audit/log-audit-sink.js';
import { Pkcs11Hsm } from './adapters/pkcs11/pkcs11-hsm.js';
import { SoftHsm } from './adapters/soft/soft-hsm.js';
import { JsonFileKeyStore } from './adapters/store/json-file-store.js';
import { type GatewayConfig, loadGatewayConfig, readMasterKey, readTlsFiles, resolvePin } from './config.js';
import type { AuditSink } from './core/audit/audit-event.js';
import { systemClock } from './core/clock.js';
import type { Hsm } from './core/keys/hsm.js';
import { createKeyService, type KeyService } from './core/keys/key-service.js';
import type { KeyStore } from './core/keys/key-store.js';
import { createApp } from './http/app.js';
import type { Readiness } from './http/deps.js';
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
): KeyRuntime {
  const hsm: Hsm =
    config.hsm.backend === 'pkcs11'
      ? new Pkcs11Hsm({
          modulePath: config.hsm.module,
          tokenLabel: config.hsm.tokenLabel,
          pin: resolvePin(config, configFile, env),
          sessions: config.hsm.sessions,
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
  const store = new JsonFileKeyStore(config.store.file);
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

export interface StartOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Log destination (stdout when absent); tests capture lines here. */
  readonly logDestination?: DestinationStream;
  /** Audit sink; a JSON-log-line sink when absent. */
  readonly audit?: AuditSink;
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

/** Starts a gateway from a config file: the one composition root of the process. */
export async function startGateway(configFile: string, options: StartOptions = {}): Promise<RunningGateway> {
  const config = loadGatewayConfig(configFile);
  const logger = createLogger({
    level: config.log.level,
    name: 'keygate-gateway',
    ...(options.logDestination ? { destination: options.logDestination } : {}),
  });
  const tls = readTlsFiles(config, configFile);
  const runtime = buildKeyRuntime(config, configFile, logger, options.env ?? process.env);
  const readiness = (): Readiness => ({ hsm: runtime.hsm.status(), store: runtime.store.status() });
  const audit = options.audit ?? new LogAuditSink(logger.child({ component: 'audit' }));
  const authenticator = new CertAllowlistAuthenticator(config.access.clients);
  const app = createApp({
    keys: runtime.keys,
    authenticator,
    policy: new RoleAccessPolicy(),
    audit,
    logger,
    metrics: createGatewayMetrics(readiness),
    clock: systemClock,
    readiness,
    bodyLimitBytes: config.server.bodyLimitBytes,
  });
  let server: RunningServer;
  try {
    server = await startHttpsServer(app, {
      host: config.server.host,
      port: config.server.port,
      ...tls,
      keepAliveTimeoutMs: config.server.keepAliveTimeoutMs,
      drainMs: config.server.drainMs,
    });
  } catch (err) {
    await runtime.close();
    throw err;
  }
  const ready = readiness();
  logger.info({ url: server.url, hsm: ready.hsm, store: config.store.file }, 'gateway listening');
  return {
    url: server.url,
    port: server.port,
    runtime,
    logger,
    async close() {
      await server.close();
      await audit.close();
      await runtime.close();
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
