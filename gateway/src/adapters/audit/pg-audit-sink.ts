import type { Clock } from '@keygate/shared';
import { KeyState } from '@keygate/shared/api';
import { type ErrorDetail, KeygateError } from '@keygate/shared/errors';
import type { AuditEvent, AuditSink } from '../../core/audit/audit-event.js';
import { lineHash } from '../../core/audit/audit-record.js';
import type { AuditSigner } from '../../core/audit/audit-signer.js';
import { batchRecords, signedRecordLine } from '../../core/audit/record-lines.js';
import type { PgClient, PgDatabase } from '../postgres/pg-database.js';

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

interface Head {
  seq: string;
  hash: string;
  boot: number;
  since_checkpoint: number;
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
 * `checkpointIntervalMs`, and at close. See docs/audit.md "PostgreSQL".
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

/** What one append to the chain writes, and with what. */
export interface ChainAppend {
  readonly events: readonly AuditEvent[];
  /** Write a signed start record for `replica` first (boot = the chain's last boot + 1). */
  readonly start: boolean;
  /** End with a `close` checkpoint. */
  readonly closing: boolean;
  /** End with an `interval` checkpoint when events are unsigned. */
  readonly checkpointDue: boolean;
  readonly signer: AuditSigner;
  readonly replica: string;
  /** A checkpoint once this many events of the chain are unsigned. */
  readonly checkpointEvery: number;
  /** ISO 8601 time of the start and checkpoint records. */
  readonly time: string;
}

export interface ChainAppended {
  /** seq and hash of the chain's head after the append. */
  readonly seq: number;
  readonly hash: string;
  readonly boot: number;
  readonly checkpoint: 'interval' | 'close' | undefined;
  /** Records were written (false: nothing was due). */
  readonly wrote: boolean;
}

/** Key operations whose answer carries key material made with the key: wrap, unwrap, rewrap. */
const KEY_USES: ReadonlySet<string> = new Set(['wrap', 'unwrap', 'rewrap']);

/**
 * The destroy guard (docs/audit.md "PostgreSQL"): in the transaction that commits their audit
 * records, the successful key uses of a batch take a share lock on their keys' rows and read the
 * state. A key that was destroyed, disabled or removed by any replica since the request read its
 * (possibly cached) record makes that request's record a failure and its answer that error, so
 * no answer made with a key leaves a replica after the key's state change committed. A destroy
 * (which takes the row's update lock) and a key use are thereby serialized: whichever commits
 * first is first. The same statement locks the chain's head row (one round trip: the head is
 * the one serialization point of all replicas, so every round trip under it counts).
 */
async function lockKeysAndHead(
  client: PgClient,
  batch: readonly Pending[],
): Promise<{ head: Head; refused: Map<Pending, KeygateError> }> {
  const uses = batch.filter(
    (p) =>
      p.event.outcome === 'success' &&
      KEY_USES.has(p.event.operation) &&
      p.event.instance !== undefined &&
      p.event.keyId !== undefined,
  );
  const pairs = [...new Map(uses.map((p) => [slot(p.event.instance, p.event.keyId), p.event])).values()];
  const r = await client.query<Head & { keys: [string, string, number][] | null }>(
    `WITH k AS (
       SELECT k.instance, k.id, k.state FROM keygate_keys k
         JOIN unnest($1::text[], $2::text[]) AS u(instance, id) ON k.instance = u.instance AND k.id = u.id
        ORDER BY k.instance, k.id
          FOR SHARE OF k
     )
     SELECT h.seq::text AS seq, h.hash, h.boot, h.since_checkpoint,
            (SELECT json_agg(json_build_array(k.instance, k.id, k.state)) FROM k) AS keys
       FROM keygate_audit_head h WHERE h.id = 1 FOR UPDATE OF h`,
    [pairs.map((e) => e.instance), pairs.map((e) => e.keyId)],
  );
  const row = r.rows[0];
  if (row === undefined) throw new Error('keygate_audit_head has no row (schema not migrated?)');
  const states = new Map((row.keys ?? []).map(([instance, id, state]) => [slot(instance, id), state]));
  const refused = new Map<Pending, KeygateError>();
  for (const p of uses) {
    const state = states.get(slot(p.event.instance, p.event.keyId));
    const detail = { keyId: p.event.keyId as string };
    if (state === undefined) refused.set(p, new KeygateError('KEY_NOT_FOUND_ERR', { detail }));
    else if (state === KeyState.DESTROYED) refused.set(p, new KeygateError('KEY_DELETED_ERR', { detail }));
    else if (state !== KeyState.ACTIVE) {
      refused.set(p, new KeygateError('KEY_ACTION_INVALID_STATE_ERR', { detail: { ...detail, state } }));
    }
  }
  const { keys: _, ...head } = row;
  return { head, refused };
}

function slot(instance: string | undefined, id: string | undefined): string {
  return `${instance}\u0000${id}`;
}

async function appendLocked(client: PgClient, head: Head, a: ChainAppend): Promise<ChainAppended> {
  let seq = Number(head.seq);
  let hash = head.hash;
  let boot = head.boot;
  const lines: string[] = [];
  if (a.start) {
    boot += 1;
    const start = { seq: ++seq, prev: hash, type: 'start', time: a.time, boot, replica: a.replica } as const;
    const line = await signedRecordLine({ ...start, keyId: a.signer.keyId }, a.signer);
    lines.push(line);
    hash = lineHash(line);
  }
  const from = { lastSeq: seq, lastHash: hash, unsigned: head.since_checkpoint };
  const policy = { closing: a.closing, every: a.checkpointEvery, due: a.checkpointDue };
  const b = await batchRecords(a.events, from, policy, a.signer, a.time);
  lines.push(...b.lines);
  const unsigned = b.checkpoint === undefined ? head.since_checkpoint + a.events.length : 0;
  if (lines.length > 0) {
    await insertLinesAndMoveHead(client, Number(head.seq) + 1, lines, a.replica, {
      seq: b.seq,
      hash: b.hash,
      boot,
      unsigned,
    });
  }
  const checkpoint = b.checkpoint === 'rotate' ? undefined : b.checkpoint;
  return { seq: b.seq, hash: b.hash, boot, checkpoint, wrote: lines.length > 0 };
}

/**
 * One statement for the whole batch: the rows (arrays unnested; seq numbers from `firstSeq` on)
 * and the head moved to the last of them.
 */
async function insertLinesAndMoveHead(
  client: PgClient,
  firstSeq: number,
  lines: readonly string[],
  replica: string,
  to: { readonly seq: number; readonly hash: string; readonly boot: number; readonly unsigned: number },
): Promise<void> {
  const seqs = lines.map((_, i) => String(firstSeq + i));
  const hashes = lines.map((l) => lineHash(l));
  const types = lines.map(recordType);
  await client.query(
    `WITH rows AS (
       INSERT INTO keygate_audit (seq, hash, type, replica, line)
       SELECT s, h, t, $4, l FROM unnest($1::bigint[], $2::text[], $3::text[], $5::text[]) AS x(s, h, t, l)
     )
     UPDATE keygate_audit_head SET seq = $6, hash = $7, boot = $8, since_checkpoint = $9 WHERE id = 1`,
    [seqs, hashes, types, replica, lines, String(to.seq), to.hash, to.boot, to.unsigned],
  );
}

/** The `type` of a record line this sink built (always the third field). */
function recordType(line: string): string {
  return /^\{"seq":\d+,"prev":"[0-9a-f]{64}","type":"([a-z]+)"/.exec(line)?.[1] ?? 'unknown';
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
