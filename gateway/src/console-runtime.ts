import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { Clock } from '@keygate/shared';
import type { Logger } from '@keygate/shared/log';
import { FileAuditReader, PgAuditReader } from './adapters/audit/audit-search.js';
import { auditVerifyKey } from './adapters/audit/key-file-signer.js';
import { describeStore, type GatewayConfig } from './config.js';
import { parseListen } from './config-console.js';
import { consoleAllowedHosts } from './console/allowed-hosts.js';
import { createConsoleApp } from './console/console-app.js';
import { type RunningConsole, startConsoleServer } from './console/console-server.js';
import type { ConsoleDeps, KeyVersionAdmin } from './console/ports.js';
import type { AuditSink } from './core/audit/audit-event.js';
import type { AuditReader } from './core/audit/audit-search.js';
import type { IdentityAdmin, IdentitySource, ServiceIdentity } from './core/auth/identity-source.js';
import type { FleetStore } from './core/fleet/fleet.js';
import type { RotationQueries } from './core/fleet/rotation-view.js';
import type { Readiness } from './http/readiness.js';
import type { KeyRuntime } from './key-runtime.js';

export type { RunningConsole } from './console/console-server.js';

/** What main.ts hands the console besides the config. */
export interface ConsoleRuntimeDeps {
  readonly runtime: KeyRuntime;
  readonly tls: { cert: Buffer; key: Buffer; clientCa: Buffer };
  readonly identities?: IdentitySource | undefined;
  readonly identityAdmin?: IdentityAdmin | undefined;
  readonly audit: AuditSink;
  readonly readiness: () => Readiness;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Wired once the fleet, guided rotation and version admin exist (issue 18 parts B and C). */
  readonly fleet?: FleetStore | undefined;
  readonly rotation?: RotationQueries | undefined;
  readonly versions?: KeyVersionAdmin | undefined;
  readonly staleAfterMs?: number | undefined;
}

/** keygate's version, from the gateway package's package.json ('unknown' when it cannot be read). */
function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version?: unknown;
    };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** The audit log to search and verify: the file log or the PostgreSQL chain; none for `audit` absent. */
function auditReader(config: GatewayConfig, runtime: KeyRuntime, clock: Clock): AuditReader | undefined {
  const a = config.audit;
  if (a === undefined) return undefined;
  const key = auditVerifyKey(readFileSync(a.signingKeyFile, 'utf8'));
  const now = () => clock.now();
  if (a.target === 'postgres') return runtime.database && new PgAuditReader(runtime.database, [key], now);
  return new FileAuditReader(a.dir, [key], now);
}

/** The identity whose certIdentities hold `cert`: from the config, or from PostgreSQL. */
function certLookup(
  config: GatewayConfig,
  admin: IdentityAdmin | undefined,
): ((cert: string) => Promise<ServiceIdentity | undefined>) | undefined {
  if (config.identities !== undefined) {
    const list = config.identities;
    return async (cert) => {
      const i = list.find((x) => x.certIdentities.includes(cert));
      return i && { name: i.name, certIdentities: i.certIdentities, roles: i.roles };
    };
  }
  if (admin === undefined) return undefined;
  return async (cert) => (await admin.list()).find((i) => i.certIdentities.includes(cert));
}

/** Starts the console when `console.listen` is set (docs/console.md); undefined when it is off. */
export async function startConsole(
  config: GatewayConfig,
  d: ConsoleRuntimeDeps,
): Promise<RunningConsole | undefined> {
  const settings = config.console;
  const listen = settings?.listen === undefined ? undefined : parseListen(settings.listen);
  if (settings === undefined || listen === undefined) return undefined;
  const deps: ConsoleDeps = {
    keys: d.runtime.keys,
    identities: d.identities,
    identityForCert: certLookup(config, d.identityAdmin),
    audit: d.audit,
    auditReader: auditReader(config, d.runtime, d.clock),
    fleet: d.fleet,
    rotation: d.rotation,
    versions: d.versions,
    staleAfterMs: d.staleAfterMs,
    readiness: d.readiness,
    info: {
      version: packageVersion(),
      replica: config.audit?.target === 'postgres' ? (config.audit.replica ?? hostname()) : hostname(),
      store: describeStore(config),
      audit:
        config.audit === undefined
          ? 'the log only (no audit: section)'
          : config.audit.target === 'postgres'
            ? 'PostgreSQL chain'
            : `files in ${config.audit.dir}`,
      replicas:
        d.fleet === undefined
          ? undefined
          : async () => {
              const nodes = await d.fleet?.nodes();
              return [...new Set((nodes ?? []).map((n) => n.replica))].sort();
            },
    },
    limits: {
      idleTimeoutMs: settings.idleTimeout,
      sessionTtlMs: settings.sessionTtl,
      maxFailedLogins: settings.maxFailedLogins,
      loginLockoutMs: settings.loginLockout,
    },
    allowedHosts: consoleAllowedHosts(settings.allowedHosts, d.tls.cert, listen.host),
    clock: d.clock,
    logger: d.logger.child({ component: 'console' }),
  };
  const { app } = createConsoleApp(deps);
  const s = config.server;
  return startConsoleServer(app, {
    host: listen.host,
    port: listen.port,
    ...d.tls,
    headersTimeoutMs: s.headersTimeoutMs,
    requestTimeoutMs: s.requestTimeoutMs,
    keepAliveTimeoutMs: s.keepAliveTimeoutMs,
    handshakeTimeoutMs: s.handshakeTimeoutMs,
  });
}
