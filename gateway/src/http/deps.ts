import type { Logger } from '@keygate/shared/log';
import type { AuditSink } from '../core/audit/audit-event.js';
import type { AccessPolicy, Authenticator } from '../core/auth/principal.js';
import type { Clock } from '../core/clock.js';
import type { KeyService } from '../core/keys/key-service.js';
import type { GatewayMetrics } from './metrics.js';
import type { Readiness } from './readiness.js';

export type { Readiness } from './readiness.js';

/** Everything the HTTP app needs, injected by main.ts. */
export interface AppDeps {
  readonly keys: KeyService;
  readonly authenticator: Authenticator;
  readonly policy: AccessPolicy;
  readonly audit: AuditSink;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics;
  readonly clock: Clock;
  readonly readiness: () => Readiness;
  /** Largest accepted request body, in bytes. */
  readonly bodyLimitBytes: number;
}
