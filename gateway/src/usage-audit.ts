import { randomUUID } from 'node:crypto';
import type { Clock } from '@keygate/shared';
import { asKeygateError, KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import type { AuditEvent, AuditSink } from './core/audit/audit-event.js';
import type { UsageEvent, UsageListener } from './core/keys/usage-budget.js';

/** The subject of audit records the gateway writes by itself for keys.usageLimit (no client asked). */
export const USAGE_LIMIT_SUBJECT = 'system:usage-limit';

type Rotated = Extract<UsageEvent, { type: 'rotated' }>;

/**
 * The audit record of an automatic rotation: a `key.rotate` like an admin's, by the gateway
 * itself, with the new version as `keyVersion`, the old one as `fromKeyVersion`, the reason and
 * the old version's reserved count (docs/audit.md "Automatic rotations").
 */
export function rotationAuditEvent(e: Rotated, time: string, requestId: string): AuditEvent {
  return {
    time,
    requestId,
    subject: USAGE_LIMIT_SUBJECT,
    instance: e.instance,
    keyId: e.keyId,
    keyVersion: e.toVersionId,
    operation: 'key.rotate',
    outcome: 'success',
    latencyMs: e.latencyMs,
    fromKeyVersion: e.fromVersionId,
    reason: e.reason,
    reserved: e.reserved,
  };
}

/**
 * Reports what the usage budget does: every event as a log line (logUsageEvent), and each rotation
 * as an audit record once a sink is attached. The record is durable before the wrap that caused
 * the rotation is answered; when it cannot be written, that wrap fails with AUDIT_UNAVAILABLE
 * (the rotation stays: the log line names both versions).
 */
export class UsageReporter {
  readonly #log: Logger;
  readonly #clock: Clock;
  #audit: AuditSink | undefined;
  #onRotated: ((event: Rotated) => Promise<void>) | undefined;

  constructor(log: Logger, clock: Clock) {
    this.#log = log;
    this.#clock = clock;
  }

  /** Rotations are audited in `sink` from now on (the key runtime is built before the sink). */
  auditTo(sink: AuditSink | undefined): void {
    this.#audit = sink;
  }

  /** `then` hears every automatic rotation (guided rotation records it); it must not throw. */
  onRotated(then: (event: Rotated) => Promise<void>): void {
    this.#onRotated = then;
  }

  /** The budget's listener. */
  readonly listener: UsageListener = async (event) => {
    logUsageEvent(this.#log, event);
    if (event.type !== 'rotated') return;
    await this.#onRotated?.(event);
    if (this.#audit !== undefined) await this.#record(this.#audit, event);
  };

  async #record(sink: AuditSink, event: Rotated): Promise<void> {
    try {
      await sink.append(rotationAuditEvent(event, this.#clock.now().toISOString(), randomUUID()));
    } catch (err) {
      const { type: _, ...fields } = event;
      this.#log.error(
        { ...fields, err: asKeygateError(err).toLog() },
        'audit record of an automatic key rotation not written: the wrap that caused it answers AUDIT_UNAVAILABLE',
      );
      throw new KeygateError('AUDIT_UNAVAILABLE', { cause: err });
    }
  }
}

/** Logs a usage-limit event (names and counts only; docs/gateway.md "Usage limits"). */
function logUsageEvent(log: Logger, event: UsageEvent): void {
  const { type, ...fields } = event;
  if (type === 'warn') {
    log.warn(
      fields,
      'key version has reserved warnAt AES-GCM encryptions (NIST SP 800-38D allows 2^32 with random IVs): it is rotated or refused at rotateAt',
    );
  } else if (type === 'rotated') {
    log.warn(fields, 'key rotated automatically by keys.usageLimit (new wraps use the new version)');
  } else {
    log.error(
      fields,
      'key version reached keys.usageLimit.rotateAt: wraps answer 409 KEY_USAGE_LIMIT_ERR until the key is rotated',
    );
  }
}
