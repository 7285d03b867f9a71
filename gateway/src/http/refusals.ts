import { asKeygateError, KeygateError } from '@keygate/shared/errors';
import type { AuditEvent } from '../core/audit/audit-event.js';
import type { PeerCertificate } from '../core/auth/principal.js';
import type { AppDeps } from './deps.js';
import type { Ctx } from './env.js';

/**
 * What a refused or failed request costs the audit log and the client, in one place for key
 * operations and token requests: the record goes through the refusal summary (one record per
 * kind and window, not one per request), and a client denied access (a bad API key, token or
 * certificate, a missing role) more often than its certificate's or identity's budget
 * (`limits.refusalsPer*`) is answered 429 RATE_LIMITED_ERR with Retry-After instead, telling it
 * to back off. Other failures are summarised but answered as they are: key states (404, 409,
 * 410) and bad ciphertexts (422) are facts a shim acts on, and 5xx are not the client's doing.
 * Returns the error to answer with.
 */
export async function refuse(
  c: Ctx,
  deps: AppDeps,
  err: unknown,
  who: { cert: PeerCertificate | undefined; subject: string | undefined },
  event: AuditEvent,
): Promise<KeygateError> {
  const k = asKeygateError(err);
  let answer = k;
  if (event.outcome === 'denied') {
    const now = deps.clock.now().getTime();
    const l = deps.limits;
    let waitMs = who.cert === undefined ? 0 : l.refusalsPerCertificate.take(who.cert.thumbprint, now);
    let limit = 'refusals-per-certificate';
    if (waitMs === 0 && who.subject !== undefined) {
      waitMs = l.refusalsPerIdentity.take(who.subject, now);
      limit = 'refusals-per-identity';
    }
    if (waitMs > 0) answer = rateLimited(deps, limit, waitMs, k);
  }
  // AUDIT_UNAVAILABLE: there is nowhere to write; the log says so already.
  if (k.code !== 'AUDIT_UNAVAILABLE') {
    await deps.refusals.record(event).catch((auditErr: unknown) => {
      c.get('log').error({ err: asKeygateError(auditErr).toLog() }, 'audit append failed');
    });
  }
  return answer;
}

/** RATE_LIMITED_ERR for `limit`, counted in the metrics, with the Retry-After seconds in its detail. */
export function rateLimited(deps: AppDeps, limit: string, waitMs: number, cause?: unknown): KeygateError {
  deps.metrics.rateLimited(limit);
  return new KeygateError('RATE_LIMITED_ERR', {
    cause,
    detail: { limit, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) },
  });
}
