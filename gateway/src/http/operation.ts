import { HEADERS, isInstanceId, isKeyId } from '@keygate/shared/api';
import { asKeygateError, errorKind, isKeygateError, KeygateError } from '@keygate/shared/errors';
import { type AuditEvent, type AuditOutcome, KEY_GUARD_CODES } from '../core/audit/audit-event.js';
import { GLOBAL_SCOPE, type PeerCertificate, type Principal } from '../core/auth/principal.js';
import { type GuardedOperation, roleFor } from '../core/auth/role-policy.js';
import type { Release } from '../core/limits/admission.js';
import type { AppDeps } from './deps.js';
import type { Ctx } from './env.js';
import { peerCertificate } from './peer-cert.js';
import { refuse } from './refusals.js';

/** What an operation reports back for the audit record. */
export interface OperationResult<T> {
  readonly value: T;
  readonly keyVersion?: string | undefined;
  readonly wrappedDekHash?: string | undefined;
  /** Why, for the audit record (`forced`: a disable-version that overrode the rotation guard). */
  readonly reason?: AuditEvent['reason'];
  /** Zeroes secrets in `value` if the answer is not sent (audit append failed). */
  readonly dispose?: (() => void) | undefined;
}

/** The operation to run; the role it needs comes from OPERATION_ROLES, never from the route. */
export interface OperationSpec {
  readonly operation: GuardedOperation;
  readonly keyId?: string | undefined;
  /**
   * Not about one instance (identity management): no instance header is needed, and the role is
   * asked for under GLOBAL_SCOPE (`'*'`).
   */
  readonly global?: boolean | undefined;
  /**
   * The identity name or API key id the operation is about, for the audit record (a function
   * when it is known only once the body is read).
   */
  readonly target?: string | (() => string | undefined) | undefined;
}

export interface OperationScope {
  readonly instance: string;
  readonly principal: Principal;
}

/**
 * The common frame of every key operation: instance header, authentication, authorization (with
 * the role OPERATION_ROLES names for the operation), audit availability (fail closed), admission
 * (a bounded number run at once, a bounded queue, the rest refused with OVERLOADED), the operation, then a durable audit record before the answer. Work
 * whose caller has given up (`x-keygate-timeout-ms`) is dropped with DEADLINE_EXCEEDED before it
 * reaches the HSM and again before it reaches the audit log. Also records metrics. Errors
 * propagate to toResponse.
 */
export async function runOperation<T>(
  c: Ctx,
  deps: AppDeps,
  spec: OperationSpec,
  body: (scope: OperationScope) => Promise<OperationResult<T>>,
): Promise<T> {
  const started = performance.now();
  const deadlineAt = c.get('deadlineAt');
  let cert: PeerCertificate | undefined;
  let principal: Principal | undefined;
  let instance: string | undefined;
  const event = (outcome: AuditOutcome, extra: Partial<AuditEvent>): AuditEvent => ({
    time: deps.clock.now().toISOString(),
    requestId: c.get('requestId'),
    correlationId: c.get('correlationId'),
    certIdentity: cert?.identity,
    subject: principal?.subject,
    instance,
    keyId: spec.keyId,
    target: typeof spec.target === 'function' ? spec.target() : spec.target,
    operation: spec.operation,
    outcome,
    latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
    deadline: deadlineAt === undefined ? undefined : new Date(deadlineAt).toISOString(),
    ...extra,
  });
  const seconds = () => (performance.now() - started) / 1000;
  let release: Release | undefined;
  let result: OperationResult<T>;
  try {
    let scope: string;
    if (spec.global === true) {
      scope = GLOBAL_SCOPE;
    } else {
      const header = c.req.header(HEADERS.instance);
      if (!isInstanceId(header)) throw new KeygateError('INSTANCE_HEADER_MISSING_ERR');
      instance = header;
      scope = header;
    }
    if (spec.keyId !== undefined && !isKeyId(spec.keyId)) throw new KeygateError('KEY_NOT_FOUND_ERR');
    cert = peerCertificate(c);
    principal = await deps.authenticator.authenticate({
      cert,
      authorization: c.req.header(HEADERS.authorization),
    });
    deps.policy.authorize(principal, scope, roleFor(spec.operation));
    deps.audit.assertAvailable();
    const slot = deps.limits.admission.acquire(deadlineAt);
    release = slot instanceof Promise ? await slot : slot;
    assertBefore(deps, deadlineAt, 'before the HSM');
    result = await body({ instance: scope, principal });
    if (passed(deps, deadlineAt)) {
      result.dispose?.();
      assertBefore(deps, deadlineAt, 'before the audit log');
    }
  } catch (err) {
    release?.();
    const k = asKeygateError(err);
    const outcome: AuditOutcome = errorKind(k.code) === 'auth' ? 'denied' : 'failure';
    const answer = await refuse(
      c,
      deps,
      k,
      { cert, subject: principal?.subject },
      event(outcome, { errorCode: k.code }),
    );
    deps.metrics.observe(spec.operation, outcome, answer.code, seconds());
    throw answer;
  }
  try {
    await deps.audit.append(
      event('success', {
        keyVersion: result.keyVersion,
        wrappedDekHash: result.wrappedDekHash,
        ...(result.reason === undefined ? {} : { reason: result.reason }),
      }),
    );
  } catch (err) {
    result.dispose?.();
    // The destroy guard: the key changed state (on another replica) before the record committed.
    if (isKeygateError(err) && KEY_GUARD_CODES.has(err.code)) {
      deps.metrics.observe(spec.operation, 'failure', err.code, seconds());
      throw err;
    }
    deps.metrics.observe(spec.operation, 'failure', 'AUDIT_UNAVAILABLE', seconds());
    throw new KeygateError('AUDIT_UNAVAILABLE', { cause: err });
  } finally {
    release();
  }
  deps.metrics.observe(spec.operation, 'success', 'OK', seconds());
  return result.value;
}

function passed(deps: AppDeps, deadlineAt: number | undefined): boolean {
  return deadlineAt !== undefined && deps.clock.now().getTime() >= deadlineAt;
}

/** DEADLINE_EXCEEDED once the caller's deadline has passed: nobody would read the answer. */
function assertBefore(deps: AppDeps, deadlineAt: number | undefined, where: string): void {
  if (passed(deps, deadlineAt)) throw new KeygateError('DEADLINE_EXCEEDED', { detail: { reason: where } });
}
