import type { Clock } from '@keygate/shared';
import { KeygateError } from '@keygate/shared/errors';
import { type AuditAnchorStore, type AuditHead, signAnchor } from '../../core/audit/audit-anchor.js';
import type { AuditSigner } from '../../core/audit/audit-signer.js';

export interface AnchorWriterOptions {
  readonly store: AuditAnchorStore;
  readonly signer: AuditSigner;
  readonly clock: Clock;
  /** Background writes at most this often. */
  readonly intervalMs: number;
  /** Told about every failed background write (the cause; the log itself is unaffected). */
  readonly onError: (err: KeygateError) => void;
}

/** The anchor owed at open could not be written (`cause` says why). */
export class AnchorWriteError extends Error {}

/**
 * Keeps the audit anchor up to date off the request path. The log writer notes each durable head;
 * the anchor is rewritten in the background at most once per interval, at once after a checkpoint
 * (`soon`), and on demand at open and close (`flush`). Writes are serialized, and a write not yet
 * started takes the latest head, so a slow store costs at most one write in flight.
 */
export class AnchorWriter {
  readonly #o: AnchorWriterOptions;
  #head: AuditHead | undefined;
  #written: AuditHead | undefined;
  #chain: Promise<void> = Promise.resolve();
  #queued: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #writes = 0;
  #owed = false;

  constructor(opts: AnchorWriterOptions) {
    this.#o = opts;
  }

  /** The log is durable up to `head` (call only after the write returned). */
  note(head: AuditHead): void {
    this.#head = head;
  }

  /** Writes the latest head in the background now (after a checkpoint). */
  soon(): void {
    this.#background();
  }

  /** Writes the latest head now; rejects when the store fails. */
  flush(): Promise<void> {
    return this.#write();
  }

  /** The head just noted must be anchored before the log is used (an open): see settle(). */
  owe(): void {
    this.#owed = true;
  }

  /** Writes an owed anchor; rejects with AnchorWriteError until that works. */
  async settle(): Promise<void> {
    if (!this.#owed) return;
    try {
      await this.flush();
    } catch (cause) {
      throw new AnchorWriteError('audit anchor write failed', { cause });
    }
    this.#owed = false;
  }

  /** Starts the interval timer. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      if (!sameHead(this.#head, this.#written)) this.#background();
    }, this.#o.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Anchors written so far (metrics and tests). */
  get writes(): number {
    return this.#writes;
  }

  #background(): void {
    this.#write().catch((cause: unknown) => {
      this.#o.onError(
        new KeygateError('AUDIT_UNAVAILABLE', {
          cause,
          detail: {
            anchor: this.#o.store.location,
            reason: 'audit anchor write failed (the log itself is written; retried)',
            vendorCode: (cause as NodeJS.ErrnoException)?.code ?? 'error',
          },
        }),
      );
    });
  }

  #write(): Promise<void> {
    if (this.#queued !== undefined) return this.#queued;
    const run = this.#chain.then(() => {
      this.#queued = undefined;
      return this.#writeLatest();
    });
    this.#queued = run;
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #writeLatest(): Promise<void> {
    const head = this.#head;
    if (head === undefined || sameHead(head, this.#written)) return;
    await this.#o.store.write(await signAnchor(head, this.#o.signer, this.#o.clock.now()));
    this.#written = head;
    this.#writes++;
  }
}

function sameHead(a: AuditHead | undefined, b: AuditHead | undefined): boolean {
  return (
    a === b ||
    (a !== undefined && b !== undefined && a.seq === b.seq && a.hash === b.hash && a.boot === b.boot)
  );
}
