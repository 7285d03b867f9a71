import type { AuditEvent, AuditSink } from './audit-event.js';

/**
 * Writes every event to a durable primary sink first, then to secondary sinks (e.g. stdout for
 * log shippers). Availability and the append result are the primary's; a failing secondary is
 * reported to `onSecondaryError` and never fails the request, since the durable log holds the record.
 */
export class FanOutAuditSink implements AuditSink {
  readonly #primary: AuditSink;
  readonly #secondaries: readonly AuditSink[];
  readonly #onError: (err: unknown, sink: AuditSink) => void;

  constructor(
    primary: AuditSink,
    secondaries: readonly AuditSink[],
    onSecondaryError: (err: unknown, sink: AuditSink) => void = () => {},
  ) {
    this.#primary = primary;
    this.#secondaries = secondaries;
    this.#onError = onSecondaryError;
  }

  assertAvailable(): void {
    this.#primary.assertAvailable();
  }

  /** Resolves once the primary has the record durably and the secondaries have taken it. */
  async append(event: AuditEvent): Promise<void> {
    await this.#primary.append(event);
    await Promise.all(
      this.#secondaries.map((s) => s.append(event).catch((err: unknown) => this.#onError(err, s))),
    );
  }

  async close(): Promise<void> {
    await this.#primary.close();
    for (const s of this.#secondaries) await s.close().catch((err: unknown) => this.#onError(err, s));
  }
}
