import type { Clock } from '@keygate/shared';
import { type ErrorDetail, KeygateError } from '@keygate/shared/errors';
import type { AuditEvent, AuditSink } from '../../core/audit/audit-event.js';
import type { AuditSigner } from '../../core/audit/audit-signer.js';
import type { PgDatabase } from '../postgres/pg-database.js';
import { appendLocked, lockKeysAndHead } from './pg-audit-chain.js';

export interface PgAuditSinkOptions {
  /** The gateway's database (migration 4: keygate_audit, keygate_audit_head). */
  readonly database: Pick<PgDatabase, 'tx' | 'open' | 'status'>;
  readonly signer: AuditSigner;
  readonly clock: Clock;
  /** This replica's name, written in its start record (default: the host name, the pod name). */
  readonly replica: string;
  /** A signed checkpoint once this many events of the chain (all replicas) are unsigned (default 1000). */
  readonly checkpointEvery?: number;
  /** …or once this replica wrote events and this long passed since its last checkpoint (default 60 s). */
  readonly checkpointIntervalMs?: number;
  /** Most events in one transaction (default 1024). */
  readonly maxBatch?: number;
  /** While unavailable, try again this often (default 1 s: key operations are refused until then). */
  readonly probeIntervalMs?: number;
  /** Told about every failed transaction (for logs; the cause, never a record). */
  readonly onError?: (err: KeygateError) => void;
  /** Test hook: runs inside every transaction, after the head row is locked. */
  readonly beforeCommit?: () => void | Promise<void>;
}

/** Counters for metrics and tests. */
export interface PgAuditSinkStats {
  /** Committed transactions (each one batch of records). */
  readonly transactions: number;
  readonly events: number;
  /** seq of the last record this replica committed (0 before the first). */
  readonly lastSeq: number;
  /** This replica's boot in the chain (0 until its start record is committed). */
  readonly boot: number;
  readonly available: boolean;
}

const DEFAULTS = {
  checkpointEvery: 1000,
  checkpointIntervalMs: 60_000,
  maxBatch: 1024,
  probeIntervalMs: 1000,
} as const;

interface Pending {
  readonly event: AuditEvent;
  readonly resolve: () => void;
  readonly reject: (err: KeygateError) => void;
}

/**
 * The audit log in PostgreSQL: ONE hash chain for every replica in `keygate_audit`, with the same
 * record lines as the file log (an export is a file log `audit verify DIR` accepts). Each batch
 * is one transaction that locks the head row (`keygate_audit_head`, SELECT … FOR UPDATE), chains
 * its lines on from it, inserts them and moves the head: the row lock is the one serialization
 * point of all replicas, and group commit (appends that arrive while a transaction is in flight
 * go together in the next one) amortizes it. `append` resolves after COMMIT. A failed
 * transaction rejects its batch with AUDIT_UNAVAILABLE and the sink stays unavailable
 * (assertAvailable throws) until a later transaction (an append or the probe timer) commits.
 * Every replica start writes a signed start record (`boot` counts starts of all replicas,
 * `replica` names it); checkpoints are signed every `checkpointEvery` events of the chain or
 * `checkpointIntervalMs`, and at close. The SQL of one transaction is in pg-audit-chain.ts. See
 * docs/audit.md "PostgreSQL".
 */
export class PgAuditSink implements AuditSink {
  readonly #o: PgAuditSinkOptions & typeof DEFAULTS;
  #queue: Pending[] = [];
  #busy = false;
  #done: Promise<void> = Promise.resolve();
  #available = false;
  #lastError: KeygateError | undefined;
  #startPending = true;
  #probeDue = false;
  #checkpointDue = false;
  #closing = false;
  #closeError: KeygateError | undefined;
  #timers: NodeJS.Timeout[] = [];
  /** Events this replica wrote since its last checkpoint check. */
  #mine = 0;
  #lastCheckpointAt = 0;
  #transactions = 0;
  #events = 0;
  #lastSeq = 0;
  #boot = 0;

  private constructor(opts: PgAuditSinkOptions) {
    this.#o = { ...DEFAULTS, ...stripUndefined(opts) } as PgAuditSinkOptions & typeof DEFAULTS;
  }

  /**
   * Writes this replica's start record and returns the sink. Never throws for the database: a sink
   * that cannot write starts unavailable and keeps probing (the start record goes first then).
   */
  static async open(opts: PgAuditSinkOptions): Promise<PgAuditSink> {
    const sink = new PgAuditSink(opts);
    sink.#lastCheckpointAt = opts.clock.now().getTime();
    if (!opts.database.status().ready) await opts.database.open();
    sink.#probeDue = true;
    await sink.#kick();
    sink.#startTimers();
    return sink;
  }

  /** Throws AUDIT_UNAVAILABLE when records cannot be written now (fail closed). */
  assertAvailable(): void {
    if (this.#closing) throw unavailable({ reason: 'closed' });
    if (!this.#available) throw unavailable({ reason: 'the last audit transaction failed' }, this.#lastError);
  }

  /**
   * Resolves once the record is committed; rejects with AUDIT_UNAVAILABLE, or for a wrap, unwrap
   * or rewrap whose key is no longer active in the database with KEY_DELETED_ERR,
   * KEY_ACTION_INVALID_STATE_ERR or KEY_NOT_FOUND_ERR (the destroy guard: the record says so).
   */
  append(event: AuditEvent): Promise<void> {
    if (this.#closing) return Promise.reject(unavailable({ reason: 'closed' }));
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ event, resolve, reject });
      void this.#kick();
    });
  }

  /** Tries a transaction now when unavailable (the probe timer does this too). Resolves either way. */
  async probe(): Promise<void> {
    if (this.#available || this.#closing) return;
    this.#probeDue = true;
    await this.#kick();
  }

  /** Commits pending records and a signed close checkpoint. Does not close the database. */
  async close(): Promise<void> {
    if (this.#closing) return this.#done;
    this.#closing = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#kick();
    if (this.#closeError !== undefined) throw this.#closeError;
  }

  get stats(): PgAuditSinkStats {
    return {
      transactions: this.#transactions,
      events: this.#events,
      lastSeq: this.#lastSeq,
      boot: this.#boot,
      available: this.#available,
    };
  }

  #startTimers(): void {
    const probe = setInterval(() => {
      if (!this.#available && !this.#closing) void this.probe();
    }, this.#o.probeIntervalMs);
    const interval = this.#o.checkpointIntervalMs;
    const checkpoint = setInterval(
      () => {
        const due = this.#o.clock.now().getTime() - this.#lastCheckpointAt >= interval;
        if (this.#available && this.#mine > 0 && due) {
          this.#checkpointDue = true;
          void this.#kick();
        }
      },
      Math.min(interval, 10_000),
    );
    probe.unref();
    checkpoint.unref();
    this.#timers.push(probe, checkpoint);
  }

  /** Starts the single writer loop unless it runs; resolves when it has nothing left to do. */
  #kick(): Promise<void> {
    if (!this.#busy) {
      this.#busy = true;
      this.#done = this.#loop();
    }
    return this.#done;
  }

  // Like the file sink: `#busy` is cleared synchronously when the loop finds nothing to do, so an
  // append queued in the same tick sees either a running loop that takes it or no loop at all.
  async #loop(): Promise<void> {
    try {
      for (;;) {
        const batch = this.#queue.splice(0, this.#o.maxBatch);
        const closeNow = this.#closing && this.#queue.length === 0;
        if (batch.length === 0 && !this.#probeDue && !this.#checkpointDue && !closeNow) return;
        this.#probeDue = false;
        // Nothing to write and the database is unreachable: the chain shows no close for this run.
        if (closeNow && batch.length === 0 && !this.#available) return;
        try {
          const refused = await this.#commitBatch(batch, closeNow);
          this.#available = true;
          for (const p of batch) {
            const no = refused.get(p);
            if (no === undefined) p.resolve();
            else p.reject(no);
          }
        } catch (cause) {
          const err = this.#fail(cause);
          for (const p of batch) p.reject(err);
          if (closeNow) this.#closeError = err;
        }
        if (closeNow) {
          this.#available = false;
          return;
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  /**
   * One transaction: lock the head, chain the start record (once per run), the batch's events and
   * a checkpoint when one is due on from it, insert them, move the head, commit.
   */
  async #commitBatch(batch: readonly Pending[], closing: boolean): Promise<Map<Pending, KeygateError>> {
    const o = this.#o;
    const writeStart = this.#startPending;
    const due = this.#checkpointDue;
    let refused = new Map<Pending, KeygateError>();
    const out = await o.database.tx(async (client) => {
      // One statement takes the keys' share locks (the destroy guard) and the head's update lock.
      const locked = await lockKeysAndHead(client, batch);
      refused = locked.refused;
      const head = locked.head;
      await o.beforeCommit?.();
      return appendLocked(client, head, {
        events: batch.map((p) => {
          const no = refused.get(p);
          return no === undefined ? p.event : { ...p.event, outcome: 'failure', errorCode: no.code };
        }),
        start: writeStart,
        closing,
        checkpointDue: due,
        signer: o.signer,
        replica: o.replica,
        checkpointEvery: o.checkpointEvery,
        time: o.clock.now().toISOString(),
      });
    });
    this.#transactions++;
    this.#events += batch.length;
    if (out.wrote) this.#lastSeq = out.seq;
    if (writeStart) {
      this.#startPending = false;
      this.#boot = out.boot;
    }
    if (due || out.checkpoint !== undefined) {
      // Due and nothing unsigned in the chain: another replica's checkpoint covered our events.
      this.#mine = 0;
      this.#lastCheckpointAt = o.clock.now().getTime();
    } else {
      this.#mine += batch.length;
    }
    if (due) this.#checkpointDue = false;
    return refused;
  }

  #fail(cause: unknown): KeygateError {
    const err = unavailable({ reason: 'the audit transaction failed' }, cause);
    this.#available = false;
    this.#lastError = err;
    this.#checkpointDue = false;
    this.#o.onError?.(err);
    return err;
  }
}

/** AUDIT_UNAVAILABLE naming the PostgreSQL target, with the cause's code as vendorCode. */
function unavailable(detail: ErrorDetail, cause?: unknown): KeygateError {
  const base = { target: 'postgres', ...detail };
  if (cause === undefined) return new KeygateError('AUDIT_UNAVAILABLE', { detail: base });
  const vendorCode = String((cause as { code?: unknown })?.code ?? 'error');
  return new KeygateError('AUDIT_UNAVAILABLE', { cause, detail: { ...base, vendorCode } });
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
