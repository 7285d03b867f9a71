import type { Logger } from '@keygate/shared/log';
import type { AuditEvent, AuditSink } from '../../core/audit/audit-event.js';

/**
 * Interim audit sink: every event as one JSON log line (`msg: "audit"`). Not tamper-evident and
 * not fsynced; the hash-chained file sink replaces it.
 */
export class LogAuditSink implements AuditSink {
  constructor(private readonly logger: Logger) {}

  assertAvailable(): void {}

  async append(event: AuditEvent): Promise<void> {
    this.logger.info({ audit: event }, 'audit');
  }

  async close(): Promise<void> {}
}
