import type { Clock } from '@keygate/shared';
import type { Logger } from '@keygate/shared/log';
import type { AuditSink } from '../core/audit/audit-event.js';
import type { RefusalSummary } from '../core/audit/refusal-summary.js';
import type { IdentityAdmin } from '../core/auth/identity-source.js';
import type { AccessPolicy, Authenticator } from '../core/auth/principal.js';
import type { IssuedToken, TokenRequestInput } from '../core/auth/token-issuer.js';
import type { RotationQueries } from '../core/fleet/rotation-view.js';
import type { KeyService } from '../core/keys/key-service.js';
import type { GatewayLimits } from '../core/limits/gateway-limits.js';
import type { FleetDeps } from './fleet-deps.js';
import type { GatewayMetrics } from './metrics.js';
import type { Readiness } from './readiness.js';

export type { Readiness } from './readiness.js';

/** Token mode: the IAM-style token exchange and the public keys that verify its tokens. */
export interface TokenService {
  /** Throws AUTH_GRANT_TYPE_INVALID, AUTH_APIKEY_INVALID or FORBIDDEN_ERR. */
  issue(req: TokenRequestInput): Promise<IssuedToken>;
  /** The JWKS document (public keys only). */
  jwks(): { keys: readonly object[] };
}

/** Everything the HTTP app needs, injected by main.ts. */
export interface AppDeps {
  readonly keys: KeyService;
  readonly authenticator: Authenticator;
  readonly policy: AccessPolicy;
  readonly audit: AuditSink;
  /** Where refused and failed requests are recorded (one record per kind and window). */
  readonly refusals: RefusalSummary;
  readonly limits: GatewayLimits;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  readonly clock: Clock;
  readonly readiness: () => Readiness;
  /** Present in token mode; without it `/identity/token` and the JWKS answer 404. */
  readonly tokens?: TokenService | undefined;
  /**
   * Run-time identity management (token mode with identities in PostgreSQL). Without it the
   * identity routes answer 409 IDENTITIES_READ_ONLY.
   */
  readonly identityAdmin?: IdentityAdmin | undefined;
  /** Guided rotation (docs/rotation.md): rotation status (rotations are recorded in `fleet.store`). */
  readonly rotations?: RotationQueries | undefined;
  /** Largest accepted request body, in bytes. */
  readonly bodyLimitBytes: number;
  /** The fleet view (docs/fleet.md): shim reports and key uses are noted in it; absent, nothing is. */
  readonly fleet?: FleetDeps | undefined;
  /** Log every answered request at info (`log.requests`); otherwise only slow ones, at warn. */
  readonly logRequests?: boolean;
}
