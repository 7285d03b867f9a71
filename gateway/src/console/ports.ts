import type { Clock } from '@keygate/shared';
import type { Logger } from '@keygate/shared/log';
import type { AuditSink } from '../core/audit/audit-event.js';
import type { AuditReader } from '../core/audit/audit-search.js';
import type { IdentitySource, ServiceIdentity } from '../core/auth/identity-source.js';
import type { FleetStore } from '../core/fleet/fleet.js';
import type { RotationQueries } from '../core/fleet/rotation-view.js';
import type { KeyService } from '../core/keys/key-service.js';
import type { KeyRecord } from '../core/keys/key-store.js';
import type { Readiness } from '../http/readiness.js';

/**
 * Disabling and enabling one version of a root key (issue 18 "Guided rotation"). Not every
 * gateway has it yet: the console shows "not available" when absent.
 */
export interface KeyVersionAdmin {
  disableVersion(instance: string, id: string, version: string, opts: { force: boolean }): Promise<KeyRecord>;
  enableVersion(instance: string, id: string, version: string): Promise<KeyRecord>;
}

/** What the status page shows besides readiness. */
export interface ConsoleInfo {
  /** keygate's version. */
  readonly version: string;
  /** This replica's name (host name by default). */
  readonly replica: string;
  /** The key store and audit target in words (`file /x/keys.json`, `postgres …`). */
  readonly store: string;
  readonly audit: string;
  /** Other replicas seen (from the fleet's node records or the database), when known. */
  replicas?(): Promise<readonly string[]>;
}

/** Console timing and login limits (config `console:`). */
export interface ConsoleLimits {
  readonly idleTimeoutMs: number;
  readonly sessionTtlMs: number;
  readonly maxFailedLogins: number;
  readonly loginLockoutMs: number;
}

/** Everything the console app needs, injected by main.ts (console-runtime.ts). */
export interface ConsoleDeps {
  readonly keys: KeyService;
  /** Token mode: API keys are checked here. Absent (certificate allow-list mode): no API-key login. */
  readonly identities?: IdentitySource | undefined;
  /** The identity a verified client certificate belongs to (its certIdentities), when any. */
  identityForCert?(certIdentity: string): Promise<ServiceIdentity | undefined>;
  readonly audit: AuditSink;
  readonly auditReader?: AuditReader | undefined;
  readonly fleet?: FleetStore | undefined;
  /** A node not heard from for this long is flagged stale (the fleet's `staleAfter`; 5 minutes when absent). */
  readonly staleAfterMs?: number | undefined;
  readonly rotation?: RotationQueries | undefined;
  readonly versions?: KeyVersionAdmin | undefined;
  readonly readiness: () => Readiness;
  readonly info: ConsoleInfo;
  readonly limits: ConsoleLimits;
  /**
   * The host names and addresses (lower case, IPv6 without brackets) the console answers to; any
   * other Host is refused with 421 CONSOLE_HOST_REFUSED (a DNS-rebound page cannot reach it).
   */
  readonly allowedHosts: ReadonlySet<string>;
  readonly clock: Clock;
  readonly logger: Logger;
}
