import type { Logger } from '@keygate/shared/log';
import type { AuditEvent, AuditSink } from '../../core/audit/audit-event.js';

/**
 * The audit sink when the config has no `audit` section (development): every event as one JSON
 * log line (`msg: "audit"`). Not tamper-evident and not fsynced; with an `audit` section the
 * hash-chained FileAuditSink is used instead.
 */
export class LogAuditSink implements AuditSink {
  constructor(private readonly logger: Logger) {}

  assertAvailable(): void {}

  async append(event: AuditEvent): Promise<void> {
    this.logger.info({ audit: event }, 'audit');
  }

  async close(): Promise<void> {}
}
