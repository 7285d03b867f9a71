import type { Writable } from 'node:stream';
import { KeygateError } from '@keygate/shared/errors';
import type { AuditEvent, AuditSink } from '../../core/audit/audit-event.js';
import { pickEventFields } from '../../core/audit/audit-record.js';

/**
 * Writes each event as one JSON line (`{"type":"event",…}`, the same allow-listed fields as the
 * file log, without the chain) to a stream such as stdout, for log shippers. `append` resolves
 * when the stream has taken the line; it is not durable, so use it behind FanOutAuditSink with
 * the file sink first, or alone only where a shipper is the system of record.
 */
export class StreamAuditSink implements AuditSink {
  readonly #out: Writable;
  #failed: Error | undefined;
  #closed = false;

  constructor(out: Writable) {
    this.#out = out;
    out.on('error', (err: Error) => {
      this.#failed = err;
    });
  }

  assertAvailable(): void {
    if (this.#closed || this.#failed !== undefined || this.#out.destroyed) {
      throw new KeygateError('AUDIT_UNAVAILABLE', { cause: this.#failed, detail: { sink: 'stream' } });
    }
  }

  append(event: AuditEvent): Promise<void> {
    try {
      this.assertAvailable();
    } catch (err) {
      return Promise.reject(err);
    }
    const line = `${JSON.stringify({ type: 'event', ...pickEventFields(event) })}\n`;
    return new Promise<void>((resolve, reject) => {
      this.#out.write(line, (err) => {
        if (err) reject(new KeygateError('AUDIT_UNAVAILABLE', { cause: err, detail: { sink: 'stream' } }));
        else resolve();
      });
    });
  }

  /** Stops accepting events. Leaves the stream open (stdout belongs to the process). */
  async close(): Promise<void> {
    this.#closed = true;
  }
}
