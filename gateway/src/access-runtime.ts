import type { Clock } from '@keygate/shared';
import { systemClock } from '@keygate/shared';
import { createLogger, type Logger } from '@keygate/shared/log';
import { AllowlistPolicy, CertAllowlistAuthenticator } from './adapters/allowlist/cert-allowlist.js';
import { JwtTokens } from './adapters/jwt/jwt-tokens.js';
import { readSigningKeyFiles } from './adapters/jwt/signing-keys.js';
import type { PgDatabase } from './adapters/postgres/pg-database.js';
import { PgIdentities } from './adapters/postgres/pg-identities.js';
import { configIdentities } from './clusters/cluster-identities-runtime.js';
import type { GatewayConfig } from './config.js';
import type { AuditSink } from './core/audit/audit-event.js';
import type { IdentityAdmin, IdentitySource } from './core/auth/identity-source.js';
import type { AccessPolicy, Authenticator } from './core/auth/principal.js';
import { RolePolicy } from './core/auth/role-policy.js';
import { TokenAuthenticator } from './core/auth/token-authenticator.js';
import { TokenIssuer } from './core/auth/token-issuer.js';
import type { TokenService } from './http/deps.js';

/** Who may call: token mode (`identities` + `tokens`) or the development certificate allow-list. */
export interface AccessRuntime {
  readonly mode: 'tokens' | 'allowlist';
  readonly authenticator: Authenticator;
  readonly policy: AccessPolicy;
  /** Token mode only: `/identity/token` and the JWKS. */
  readonly tokens?: TokenService | undefined;
  /** Token mode with identities in PostgreSQL: run-time identity management (admin API). */
  readonly identityAdmin?: IdentityAdmin | undefined;
  /** Token mode: where API keys are verified (the console's login uses it too). */
  readonly identities?: IdentitySource | undefined;
  /** Stops following identity changes. */
  close(): void;
  /** File store: onboarded clusters' changes are audited here (docs/clusters.md). */
  auditTo?(sink: AuditSink): void;
  /** File store: calls `fn` with each onboarded cluster removed from clusters.json. */
  onClusterRemoved?(fn: (name: string) => void): void;
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
    identities,
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
    ...(fromConfig?.onRemoved === undefined ? {} : { onClusterRemoved: fromConfig.onRemoved }),
    close() {
      authenticator.close();
      pg?.close();
      fromConfig?.close();
    },
  };
}
