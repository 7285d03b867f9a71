import { asKeygateError, errorKind, type KeygateError } from '@keygate/shared/errors';
import type { AuditEvent, AuditOperation, AuditOutcome } from '../core/audit/audit-event.js';
import type { ServiceIdentity } from '../core/auth/identity-source.js';
import { GLOBAL_SCOPE, type Principal, type Role } from '../core/auth/principal.js';
import { RolePolicy } from '../core/auth/role-policy.js';
import type { ConsoleCtx } from './console-env.js';
import type { ConsoleDeps } from './ports.js';
import { LoginLimiter, type Session, SessionStore } from './sessions.js';

const policy = new RolePolicy();

/** The principal a console identity acts as (`console:<name>` in the audit log). */
export function consolePrincipal(identity: ServiceIdentity, certIdentity?: string): Principal {
  return {
    cert: { identity: certIdentity ?? `console:${identity.name}`, thumbprint: '' },
    subject: `console:${identity.name}`,
    roles: identity.roles,
  };
}

/** Does `identity` hold `role` on `scope` (or a role implying it)? Same rules as the API. */
export function holds(identity: ServiceIdentity, scope: string, role: Role): boolean {
  try {
    policy.authorize(consolePrincipal(identity), scope, role);
    return true;
  } catch {
    return false;
  }
}

/** May log in to the console: `fleet:read` (or `identities:admin`) under `'*'`. */
export function mayUseConsole(identity: ServiceIdentity): boolean {
  return holds(identity, GLOBAL_SCOPE, 'fleet:read');
}

/** The instances whose keys `identity` may read, sorted. */
export function readableInstances(identity: ServiceIdentity): string[] {
  return Object.keys(identity.roles)
    .filter((i) => i !== GLOBAL_SCOPE && holds(identity, i, 'keys:read'))
    .sort();
}

/** What the console's handlers share: its ports, its sessions and the audit of its actions. */
export class ConsoleCore {
  readonly deps: ConsoleDeps;
  readonly sessions: SessionStore;
  readonly logins: LoginLimiter;

  constructor(deps: ConsoleDeps) {
    this.deps = deps;
    const now = () => deps.clock.now().getTime();
    this.sessions = new SessionStore({
      idleMs: deps.limits.idleTimeoutMs,
      ttlMs: deps.limits.sessionTtlMs,
      now,
    });
    this.logins = new LoginLimiter({
      max: deps.limits.maxFailedLogins,
      windowMs: deps.limits.loginLockoutMs,
      now,
    });
  }

  /** An audit record of a console login, logout or action (identity `console:<name>`). */
  event(
    c: ConsoleCtx,
    operation: AuditOperation,
    outcome: AuditOutcome,
    started: number,
    extra: Partial<AuditEvent> & { identity?: string | undefined },
  ): AuditEvent {
    const { identity, ...rest } = extra;
    return {
      time: this.deps.clock.now().toISOString(),
      requestId: c.get('requestId'),
      subject: identity === undefined ? undefined : `console:${identity}`,
      operation,
      outcome,
      latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
      ...rest,
    };
  }

  /** Appends `event`; a failed append is logged (and, for actions, reported by the caller). */
  async audit(event: AuditEvent): Promise<void> {
    await this.deps.audit.append(event);
  }

  /** Appends a refusal or failure record without letting an audit fault hide the first error. */
  async auditQuietly(event: AuditEvent): Promise<void> {
    try {
      await this.deps.audit.append(event);
    } catch (err) {
      this.deps.logger.error({ err: asKeygateError(err).toLog() }, 'console: audit append failed');
    }
  }

  /**
   * The session's identity as it is now: an API-key session whose key was revoked or whose
   * identity lost the console role ends here. Undefined when it ended.
   */
  current(session: Session): ServiceIdentity | undefined {
    const src = this.deps.identities;
    const now =
      session.via === 'apikey' && src !== undefined
        ? src.liveIdentity(session.identity.name, session.apiKeyId)
        : session.identity;
    return now !== undefined && mayUseConsole(now) ? now : undefined;
  }
}

/** The outcome an error is audited with (auth kinds are `denied`). */
export function outcomeOf(err: KeygateError): AuditOutcome {
  return errorKind(err.code) === 'auth' ? 'denied' : 'failure';
}
