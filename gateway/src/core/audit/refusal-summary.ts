import type { Clock } from '@keygate/shared';
import type { AuditEvent, AuditSink } from './audit-event.js';

export interface RefusalSummaryOptions {
  readonly sink: AuditSink;
  readonly clock: Clock;
  /** Length of a window: the first refusal of a kind in it is written, the rest are counted. */
  readonly windowMs: number;
  /** Kinds tracked at once; more fold into one kind per operation and code (default 10,000). */
  readonly maxKinds?: number;
  /** Told when a summary record could not be written (the requests were answered already). */
  readonly onError?: (err: unknown) => void;
}

interface Window {
  readonly start: number;
  /** Refusals after the first one, not written one by one. */
  count: number;
  since: string | undefined;
  last: AuditEvent | undefined;
}

/**
 * The audit records of refused and failed requests. Each kind (certificate, subject, operation,
 * instance, key, outcome and code) is written as it happens once per window; the others of that
 * window become one summary record with `count` and `since` when the window ends. So a client
 * that is refused thousands of times a second costs the audit log one record per window and
 * kind, not one per request, while the first refusal of every kind is still on record at once.
 */
export class RefusalSummary {
  readonly #o: RefusalSummaryOptions;
  readonly #windows = new Map<string, Window>();
  #summarised = 0;

  constructor(options: RefusalSummaryOptions) {
    this.#o = options;
  }

  /** Refusals counted into summaries so far (not written one by one). */
  get summarised(): number {
    return this.#summarised;
  }

  /**
   * Records a non-success event: appends it (resolving when durable, like AuditSink.append) when
   * it is the first of its kind in the window, else counts it and resolves at once.
   */
  record(event: AuditEvent): Promise<void> {
    const now = this.#o.clock.now().getTime();
    let key = kindOf(event);
    let w = this.#windows.get(key);
    if (w === undefined && this.#windows.size >= (this.#o.maxKinds ?? 10_000)) {
      key = `*\u0000${event.operation}\u0000${event.outcome}\u0000${event.errorCode ?? ''}`;
      w = this.#windows.get(key);
    }
    if (w !== undefined && now - w.start < this.#o.windowMs) {
      w.count++;
      w.since ??= event.time;
      w.last = event;
      this.#summarised++;
      return Promise.resolve();
    }
    if (w !== undefined) this.#emit(w);
    this.#windows.set(key, { start: now, count: 0, since: undefined, last: undefined });
    return this.#o.sink.append(event);
  }

  /** Writes the summaries of windows that have ended (call it from a timer). */
  flushEnded(): void {
    const now = this.#o.clock.now().getTime();
    for (const [key, w] of this.#windows) {
      if (now - w.start < this.#o.windowMs) continue;
      this.#windows.delete(key);
      this.#emit(w);
    }
  }

  /** Writes every pending summary now (before the audit log closes). */
  async flushAll(): Promise<void> {
    const pending = [...this.#windows.values()];
    this.#windows.clear();
    await Promise.all(pending.map((w) => this.#emit(w)));
  }

  #emit(w: Window): Promise<void> {
    const last = w.last;
    if (last === undefined || w.count === 0) return Promise.resolve();
    const summary: AuditEvent = {
      ...last,
      time: this.#o.clock.now().toISOString(),
      count: w.count,
      since: w.since,
    };
    return this.#o.sink.append(summary).catch((err: unknown) => this.#o.onError?.(err));
  }
}

/** The fields that make two refusals "the same kind". */
function kindOf(e: AuditEvent): string {
  return [e.certIdentity, e.subject, e.operation, e.instance, e.keyId, e.outcome, e.errorCode].join('\u0000');
}
