import { type ErrorDetail, isKeygateError, KeygateError } from '@keygate/shared/errors';
import type { AuditEvent, AuditSink } from '../../core/audit/audit-event.js';
import { GENESIS_PREV, type LossRecord, lineHash } from '../../core/audit/audit-record.js';
import { batchRecords, rotateCheckpointLine } from '../../core/audit/record-lines.js';
import { AnchorWriteError, AnchorWriter } from './anchor-writer.js';
import {
  type FileAuditSinkOptions,
  type FileAuditSinkStats,
  type OptionalSinkOption,
  SINK_DEFAULTS,
} from './file-sink-options.js';
import { appendToFile, createAuditFile, type OpenedLog, type OpenFile, openAuditLog } from './log-opener.js';

export type { FileAuditSinkOptions, FileAuditSinkStats } from './file-sink-options.js';

interface Pending {
  readonly event: AuditEvent;
  readonly resolve: () => void;
  readonly reject: (err: KeygateError) => void;
}

/**
 * The durable audit log: hash-chained JSON lines in rotating files, group commit with O_DSYNC
 * writes, signed checkpoints, a signed start record per run and an anchor outside the folder.
 * `append` resolves only after its record is on disk (never waiting for the anchor); a write or
 * sync failure rejects the batch with AUDIT_UNAVAILABLE and makes the sink unavailable until a
 * probe (a later append, or the probe timer) reopens the log. See docs/audit.md.
 */
export class FileAuditSink implements AuditSink {
  readonly #o: Required<Omit<FileAuditSinkOptions, OptionalSinkOption>> &
    Pick<FileAuditSinkOptions, OptionalSinkOption>;
  readonly #anchor: AnchorWriter;
  #open: OpenFile | undefined;
  #lastSeq = 0;
  #lastHash = GENESIS_PREV;
  #boot = 0;
  #refused: KeygateError | undefined;
  #loss: LossRecord | undefined;
  #unsigned = 0;
  #lastCheckpointAt = 0;
  #available = false;
  #lastError: KeygateError | undefined;
  #hadFailure = false;
  #queue: Pending[] = [];
  #busy = false;
  #done: Promise<void> = Promise.resolve();
  #probeDue = false;
  #checkpointDue = false;
  #closing = false;
  #closeError: KeygateError | undefined;
  #timers: NodeJS.Timeout[] = [];
  #syncs = 0;
  #events = 0;
  /** During the first open: a refusal is thrown to the caller, not reported to onError. */
  #initial = true;

  private constructor(opts: FileAuditSinkOptions) {
    this.#o = { ...SINK_DEFAULTS, ...opts };
    this.#anchor = new AnchorWriter({
      store: opts.anchors,
      signer: opts.signer,
      clock: opts.clock,
      intervalMs: this.#o.anchorIntervalMs,
      onError: (err) => this.#o.onError?.(err),
    });
  }

  /**
   * Opens (or creates) the log in `dir`, checks it against its anchor, and resumes the chain with
   * a start record. Throws AUDIT_ANCHOR_MISMATCH when the log is behind or differs from its
   * anchor; never throws for I/O: a sink that cannot open starts unavailable and keeps probing.
   */
  static async open(opts: FileAuditSinkOptions): Promise<FileAuditSink> {
    const sink = new FileAuditSink(opts);
    sink.#probeDue = true;
    await sink.#kick();
    sink.#initial = false;
    if (sink.#refused !== undefined) {
      sink.#closing = true;
      await sink.#closeFile();
      throw sink.#refused;
    }
    sink.#startTimers();
    return sink;
  }

  /** Throws AUDIT_UNAVAILABLE when records cannot be written now (fail closed). */
  assertAvailable(): void {
    if (this.#closing) throw unavailable({ dir: this.#o.dir, reason: 'closed' });
    if (!this.#available)
      throw unavailable({ dir: this.#o.dir, reason: 'write, open or anchor failed' }, this.#lastError);
  }

  /** Resolves once the record is durable (its O_DSYNC write returned); rejects with AUDIT_UNAVAILABLE. */
  append(event: AuditEvent): Promise<void> {
    if (this.#closing) return Promise.reject(unavailable({ dir: this.#o.dir, reason: 'closed' }));
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ event, resolve, reject });
      void this.#kick();
    });
  }

  /** Tries to reopen an unavailable log now (the probe timer does this too). Resolves either way. */
  async probe(): Promise<void> {
    if (this.#available || this.#closing) return;
    this.#probeDue = true;
    await this.#kick();
  }

  /** Writes pending records and a signed close checkpoint, anchors it, then closes the file. */
  async close(): Promise<void> {
    if (this.#closing) return this.#done;
    this.#closing = true;
    for (const t of this.#timers) clearInterval(t);
    this.#anchor.stop();
    await this.#kick();
    if (this.#closeError !== undefined) throw this.#closeError;
  }

  get stats(): FileAuditSinkStats {
    return {
      syncs: this.#syncs,
      events: this.#events,
      lastSeq: this.#lastSeq,
      boot: this.#boot,
      anchorWrites: this.#anchor.writes,
      available: this.#available,
    };
  }

  /** The loss record this sink wrote (with `acknowledgeLoss`), if any. */
  get acknowledged(): LossRecord | undefined {
    return this.#loss;
  }

  #startTimers(): void {
    const probe = setInterval(() => {
      if (!this.#available && !this.#closing && this.#refused === undefined) void this.probe();
    }, this.#o.probeIntervalMs);
    const checkpoint = setInterval(
      () => {
        const due = this.#o.clock.now().getTime() - this.#lastCheckpointAt >= this.#o.checkpointIntervalMs;
        if (this.#available && this.#unsigned > 0 && due) {
          this.#checkpointDue = true;
          void this.#kick();
        }
      },
      Math.min(this.#o.checkpointIntervalMs, 10_000),
    );
    probe.unref();
    checkpoint.unref();
    this.#timers.push(probe, checkpoint);
    this.#anchor.start();
  }

  /** Starts the single writer loop unless it runs; resolves when it has nothing left to do. */
  #kick(): Promise<void> {
    if (!this.#busy) {
      this.#busy = true;
      this.#done = this.#loop();
    }
    return this.#done;
  }

  // `#busy` is cleared synchronously when the loop finds nothing to do, so an append queued in
  // the same tick always sees either a running loop that will take it or no loop at all.
  async #loop(): Promise<void> {
    try {
      for (;;) {
        const batch = this.#queue.splice(0, this.#o.maxBatch);
        const closeNow = this.#closing && this.#queue.length === 0;
        if (batch.length === 0 && !this.#probeDue && !this.#checkpointDue && !closeNow) return;
        this.#probeDue = false;
        if (closeNow && batch.length === 0 && !this.#available) {
          // Nothing to write and the log is unreachable: the next open records an unclean shutdown.
          await this.#closeFile();
          return;
        }
        let written = false;
        try {
          await this.#ensureOpen();
          await this.#anchor.settle();
          await this.#writeBatch(batch, closeNow);
          written = true;
          this.#available = true;
          for (const p of batch) p.resolve();
        } catch (cause) {
          const err =
            cause instanceof AnchorWriteError ? this.#anchorFailed(cause.cause) : await this.#fail(cause);
          for (const p of batch) p.reject(err);
          if (closeNow) this.#closeError = err;
        }
        if (closeNow) {
          // The close checkpoint is durable: anchor it, so the next open finds the whole run.
          if (written) {
            await this.#anchor.flush().catch((cause: unknown) => {
              this.#closeError = this.#anchorFailed(cause);
            });
          }
          await this.#closeFile();
          this.#available = false;
          return;
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  /** Appends the batch's event records, plus a checkpoint when one is due, in one durable write. */
  async #writeBatch(batch: readonly Pending[], closing: boolean): Promise<void> {
    await this.#rotateIfDue();
    const from = { lastSeq: this.#lastSeq, lastHash: this.#lastHash, unsigned: this.#unsigned };
    const policy = { closing, every: this.#o.checkpointEvery, due: this.#checkpointDue };
    const time = this.#o.clock.now().toISOString();
    const out = await batchRecords(
      batch.map((p) => p.event),
      from,
      policy,
      this.#o.signer,
      time,
    );
    if (out.lines.length > 0) await this.#writeDurably(out.lines, out.seq, out.hash);
    this.#events += batch.length;
    this.#unsigned = out.checkpoint === undefined ? from.unsigned + batch.length : 0;
    if (out.checkpoint !== undefined) this.#lastCheckpointAt = this.#o.clock.now().getTime();
    if (out.checkpoint === 'interval') this.#anchor.soon();
    this.#checkpointDue = false;
  }

  /**
   * One write on a file opened with O_DSYNC: it returns once the data (and the size change) is on
   * stable storage, like write + fdatasync, but in one system call and one thread-pool hop. Then
   * the chain's head moves to (`seq`, `hash`): noted for the anchor and copied to the stream.
   */
  async #writeDurably(lines: readonly string[], seq: number, hash: string): Promise<void> {
    const open = this.#requireOpen();
    const text = `${lines.join('\n')}\n`;
    await this.#o.beforeSync?.();
    await appendToFile(open, text);
    this.#syncs++;
    this.#lastSeq = seq;
    this.#lastHash = hash;
    if (this.#boot > 0) this.#anchor.note({ seq, hash, boot: this.#boot });
    try {
      this.#o.onWritten?.(text);
    } catch {
      // The copy never fails a request: the durable log holds the records.
    }
  }

  async #rotateIfDue(): Promise<void> {
    const open = this.#requireOpen();
    if (open.size === 0) return;
    const age = this.#o.clock.now().getTime() - open.file.startedAt;
    if (open.size < this.#o.maxFileBytes && age < this.#o.maxFileAgeMs) return;
    const from = { lastSeq: this.#lastSeq, lastHash: this.#lastHash, unsigned: this.#unsigned };
    const line = await rotateCheckpointLine(from, this.#o.signer, this.#o.clock.now().toISOString());
    await this.#writeDurably([line], from.lastSeq + 1, lineHash(line));
    this.#anchor.soon();
    this.#unsigned = 0;
    this.#lastCheckpointAt = this.#o.clock.now().getTime();
    await this.#closeFile();
    this.#open = await createAuditFile(this.#o.dir, this.#lastSeq + 1, this.#o.clock.now());
  }

  #requireOpen(): OpenFile {
    if (this.#open === undefined) throw new Error('audit file is not open');
    return this.#open;
  }

  /**
   * Opens the log (see openAuditLog) and writes what is due before any event: a recovery record
   * after a crash or a failed write, a loss record when acknowledging one, and, once per run, the
   * start record. The anchor of the new head is then owed before anything else is written.
   */
  async #ensureOpen(): Promise<void> {
    if (this.#open !== undefined) return;
    if (this.#refused !== undefined) throw this.#refused;
    const now = this.#o.clock.now();
    let opened: OpenedLog;
    try {
      opened = await openAuditLog({
        dir: this.#o.dir,
        anchors: this.#o.anchors,
        signer: this.#o.signer,
        now,
        acknowledgeLoss: this.#o.acknowledgeLoss,
        hadFailure: this.#hadFailure,
        boot: this.#boot,
        onWarning: this.#o.onWarning,
      });
    } catch (err) {
      if (isKeygateError(err) && err.code === 'AUDIT_ANCHOR_MISMATCH') this.#refused = err;
      throw err;
    }
    this.#open = opened.open;
    const { scan } = opened.inspection;
    this.#lastSeq = scan.lastSeq;
    this.#lastHash = scan.lastHash;
    this.#lastCheckpointAt = now.getTime();
    const due = opened.due;
    if (due.lines.length > 0) await this.#writeDurably(due.lines, due.seq, due.hash);
    this.#boot = opened.boot;
    this.#loss ??= due.loss;
    this.#hadFailure = false;
    this.#anchor.note({ seq: this.#lastSeq, hash: this.#lastHash, boot: this.#boot });
    this.#anchor.owe();
  }

  async #closeFile(): Promise<void> {
    const open = this.#open;
    this.#open = undefined;
    await open?.fh.close().catch(() => undefined);
  }

  #anchorFailed(cause: unknown): KeygateError {
    const reason = 'the audit anchor cannot be written';
    const err = unavailable({ dir: this.#o.dir, anchor: this.#o.anchors.location, reason }, cause);
    this.#available = false;
    this.#lastError = err;
    this.#o.onError?.(err);
    return err;
  }

  async #fail(cause: unknown): Promise<KeygateError> {
    const err =
      cause instanceof KeygateError && cause.code === 'AUDIT_UNAVAILABLE'
        ? cause
        : unavailable({ dir: this.#o.dir }, cause);
    // A refusal is thrown to the caller at open, and reported once after.
    const quiet = cause === this.#refused && (this.#initial || this.#lastError?.cause === cause);
    this.#available = false;
    this.#lastError = err;
    this.#hadFailure = true;
    this.#checkpointDue = false;
    await this.#closeFile();
    if (!quiet) this.#o.onError?.(err);
    return err;
  }
}

/** AUDIT_UNAVAILABLE with `detail`, and the cause's errno as vendorCode when there is a cause. */
function unavailable(detail: ErrorDetail, cause?: unknown): KeygateError {
  if (cause === undefined) return new KeygateError('AUDIT_UNAVAILABLE', { detail });
  const vendorCode = (cause as NodeJS.ErrnoException)?.code ?? 'error';
  return new KeygateError('AUDIT_UNAVAILABLE', { cause, detail: { ...detail, vendorCode } });
}
