import { HEADERS, ID_PATTERN } from '@keygate/shared/api';
import { asKeygateError, type ErrorCode, KeygateError } from '@keygate/shared/errors';
import type { AuditEvent, AuditOperation, AuditOutcome } from '../core/audit/audit-event.js';
import type { Principal, Role } from '../core/auth/principal.js';
import type { AppDeps } from './deps.js';
import type { Ctx } from './env.js';
import { peerCertificate } from './peer-cert.js';

/** What an operation reports back for the audit record. */
export interface OperationResult<T> {
  readonly value: T;
  readonly keyVersion?: string | undefined;
  readonly wrappedDekHash?: string | undefined;
  /** Zeroes secrets in `value` if the answer is not sent (audit append failed). */
  readonly dispose?: (() => void) | undefined;
}

export interface OperationSpec {
  readonly operation: AuditOperation;
  readonly role: Role;
  readonly keyId?: string | undefined;
}

export interface OperationScope {
  readonly instance: string;
  readonly principal: Principal;
}

/**
 * The common frame of every key operation: instance header, authentication, authorization, audit
 * availability (fail closed), the operation, then a durable audit record before the answer.
 * Also records metrics. Errors propagate to toResponse.
 */
export async function runOperation<T>(
  c: Ctx,
  deps: AppDeps,
  spec: OperationSpec,
  body: (scope: OperationScope) => Promise<OperationResult<T>>,
): Promise<T> {
  const started = performance.now();
  let principal: Principal | undefined;
  let instance: string | undefined;
  const event = (outcome: AuditOutcome, extra: Partial<AuditEvent>): AuditEvent => ({
    time: deps.clock.now().toISOString(),
    requestId: c.get('requestId'),
    correlationId: c.get('correlationId'),
    certIdentity: principal?.cert.identity,
    subject: principal?.subject,
    instance,
    keyId: spec.keyId,
    operation: spec.operation,
    outcome,
    latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
    ...extra,
  });
  const seconds = () => (performance.now() - started) / 1000;
  let result: OperationResult<T>;
  try {
    const header = c.req.header(HEADERS.instance);
    if (header === undefined || !ID_PATTERN.test(header))
      throw new KeygateError('INSTANCE_HEADER_MISSING_ERR');
    instance = header;
    if (spec.keyId !== undefined && !ID_PATTERN.test(spec.keyId)) throw new KeygateError('KEY_NOT_FOUND_ERR');
    principal = await deps.authenticator.authenticate({
      cert: peerCertificate(c),
      authorization: c.req.header(HEADERS.authorization),
    });
    deps.policy.authorize(principal, instance, spec.role);
    deps.audit.assertAvailable();
    result = await body({ instance, principal });
  } catch (err) {
    const code: ErrorCode = asKeygateError(err).code;
    const outcome: AuditOutcome = code === 'FORBIDDEN_ERR' || code.startsWith('AUTH_') ? 'denied' : 'failure';
    deps.metrics.observe(spec.operation, outcome, code, seconds());
    if (code !== 'AUDIT_UNAVAILABLE') {
      await deps.audit.append(event(outcome, { errorCode: code })).catch((auditErr: unknown) => {
        c.get('log').error({ err: asKeygateError(auditErr).toLog() }, 'audit append failed');
      });
    }
    throw err;
  }
  try {
    await deps.audit.append(
      event('success', { keyVersion: result.keyVersion, wrappedDekHash: result.wrappedDekHash }),
    );
  } catch (err) {
    result.dispose?.();
    deps.metrics.observe(spec.operation, 'failure', 'AUDIT_UNAVAILABLE', seconds());
    throw new KeygateError('AUDIT_UNAVAILABLE', { cause: err });
  }
  deps.metrics.observe(spec.operation, 'success', 'OK', seconds());
  return result.value;
}
