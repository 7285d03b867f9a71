import { isKeygateError, KeygateError } from '@keygate/shared/errors';
import type { AuditAnchorStore } from '../../core/audit/audit-anchor.js';
import type { AuditEvent, AuditSink } from '../../core/audit/audit-event.js';
import {
  type CheckpointRecord,
  eventLine,
  GENESIS_PREV,
  type LossRecord,
  lineHash,
  recordLine,
  signingInput,
  type UnsignedRecord,
} from '../../core/audit/audit-record.js';
import type { AuditSigner } from '../../core/audit/audit-signer.js';
import type { Clock } from '../../core/clock.js';
import { AnchorWriter } from './anchor-writer.js';
import { createAuditFile, type OpenFile, openAuditLog } from './log-opener.js';

export interface FileAuditSinkOptions {
  readonly dir: string;
  readonly signer: AuditSigner;
  readonly clock: Clock;
  /** Where the anchor is kept (docs/audit.md "The anchor"). */
  readonly anchors: AuditAnchorStore;
  /** Background anchor writes at most this often (default 1 s). */
  readonly anchorIntervalMs?: number;
  /** A signed checkpoint after this many events (default 1000). */
  readonly checkpointEvery?: number;
  /** …or after this long with unsigned events (default 60 s). */
  readonly checkpointIntervalMs?: number;
  /** Rotate before a write once the file holds this many bytes (default 64 MiB). */
  readonly maxFileBytes?: number;
  /** Rotate before a write once the file is this old (default 24 h). */
  readonly maxFileAgeMs?: number;
  /** Most events in one write (default 1024). */
  readonly maxBatch?: number;
  /** While unavailable, try to reopen this often (default 5 s). */
  readonly probeIntervalMs?: number;
  /** Told about every write, sync, open or anchor failure (for logs; the cause, never a record). */
  readonly onError?: (err: KeygateError) => void;
  /** Told when the log is taken over without an anchor (a log written before anchors existed). */
  readonly onWarning?: (message: string, detail: Readonly<Record<string, string | number>>) => void;
  /** Given the exact text of every durable write (whole lines), after it returned: the stream copy. */
  readonly onWritten?: (text: string) => void;
  /** `audit acknowledge-loss`: open a log that does not match its anchor and record the loss. */
  readonly acknowledgeLoss?: { readonly reason: string };
  /** Test hook: runs before every durable write; throw to simulate a failing disk. */
  readonly beforeSync?: () => void | Promise<void>;
}

type Optional = 'onError' | 'onWarning' | 'onWritten' | 'acknowledgeLoss' | 'beforeSync';

interface Pending {
  readonly event: AuditEvent;
  readonly resolve: () => void;
  readonly reject: (err: KeygateError) => void;
}

/** Counters for metrics and tests. */
export interface FileAuditSinkStats {
  /** Durable writes (each one O_DSYNC write of a batch). */
  readonly syncs: number;
  readonly events: number;
  readonly lastSeq: number;
  /** This run's boot (0 until the log was opened). */
  readonly boot: number;
  readonly anchorWrites: number;
  readonly available: boolean;
}

/** The anchor could not be written at open: the log stays open, the sink unavailable until it is. */
class AnchorUnwritten extends Error {}

/**
 * The durable audit log: hash-chained JSON lines in rotating files, group commit with O_DSYNC
 * writes, signed checkpoints, a signed start record per run and an anchor outside the folder.
 * `append` resolves only after its record is on disk (never waiting for the anchor); a write or
 * sync failure rejects the batch with AUDIT_UNAVAILABLE and makes the sink unavailable until a
 * probe (a later append, or the probe timer) reopens the log. See docs/audit.md.
 */
export class FileAuditSink implements AuditSink {
  readonly #o: Required<Omit<FileAuditSinkOptions, Optional>> & Pick<FileAuditSinkOptions, Optional>;
  readonly #anchor: AnchorWriter;
  #open: OpenFile | undefined;
  #lastSeq = 0;
  #lastHash = GENESIS_PREV;
  #boot = 0;
  #anchorOwed = false;
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
    this.#o = {
      anchorIntervalMs: 1000,
      checkpointEvery: 1000,
      checkpointIntervalMs: 60_000,
      maxFileBytes: 64 * 1024 * 1024,
      maxFileAgeMs: 24 * 3_600_000,
      maxBatch: 1024,
      probeIntervalMs: 5_000,
      ...opts,
    };
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
    if (this.#closing)
      throw new KeygateError('AUDIT_UNAVAILABLE', { detail: { dir: this.#o.dir, reason: 'closed' } });
    if (!this.#available) {
      throw new KeygateError('AUDIT_UNAVAILABLE', {
        cause: this.#lastError,
        detail: { dir: this.#o.dir, reason: 'write, open or anchor failed' },
      });
    }
  }

  /** Resolves once the record is durable (its O_DSYNC write returned); rejects with AUDIT_UNAVAILABLE. */
  append(event: AuditEvent): Promise<void> {
    if (this.#closing) {
      return Promise.reject(
        new KeygateError('AUDIT_UNAVAILABLE', { detail: { dir: this.#o.dir, reason: 'closed' } }),
      );
    }
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
          await this.#ensureAnchored();
          await this.#writeBatch(batch, closeNow);
          written = true;
          this.#available = true;
          for (const p of batch) p.resolve();
        } catch (cause) {
          const err = cause instanceof AnchorUnwritten ? this.#anchorFailed(cause) : await this.#fail(cause);
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
    let seq = this.#lastSeq;
    let hash = this.#lastHash;
    const lines: string[] = [];
    for (const p of batch) {
      const line = eventLine(++seq, hash, p.event);
      hash = lineHash(line);
      lines.push(line);
    }
    const unsigned = this.#unsigned + batch.length;
    let reason: CheckpointRecord['reason'] | undefined;
    if (closing) reason = 'close';
    else if (unsigned >= this.#o.checkpointEvery || (this.#checkpointDue && unsigned > 0))
      reason = 'interval';
    if (reason !== undefined) {
      const line = await this.#checkpointLine(++seq, hash, reason, unsigned);
      hash = lineHash(line);
      lines.push(line);
    }
    if (lines.length > 0) await this.#writeDurably(lines, seq, hash);
    this.#events += batch.length;
    if (reason !== undefined) {
      this.#unsigned = 0;
      this.#lastCheckpointAt = this.#o.clock.now().getTime();
      if (reason !== 'close') this.#anchor.soon();
    } else {
      this.#unsigned = unsigned;
    }
    this.#checkpointDue = false;
  }

  #checkpointLine(seq: number, prev: string, reason: CheckpointRecord['reason'], count: number) {
    const time = this.#o.clock.now().toISOString();
    return this.#signedLine({
      seq,
      prev,
      type: 'checkpoint',
      time,
      reason,
      count,
      keyId: this.#o.signer.keyId,
    });
  }

  async #signedLine(unsigned: UnsignedRecord): Promise<string> {
    const sig = Buffer.from(await this.#o.signer.sign(signingInput(unsigned))).toString('base64url');
    return recordLine({ ...unsigned, sig } as Parameters<typeof recordLine>[0]);
  }

  /**
   * One write on a file opened with O_DSYNC: it returns once the data (and the size change) is on
   * stable storage, like write + fdatasync, but in one system call and one thread-pool hop. Then
   * the chain's head moves to (`seq`, `hash`): noted for the anchor and copied to the stream.
   */
  async #writeDurably(lines: readonly string[], seq: number, hash: string): Promise<void> {
    const open = this.#requireOpen();
    const text = `${lines.join('\n')}\n`;
    const buf = Buffer.from(text, 'utf8');
    await this.#o.beforeSync?.();
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await open.fh.write(buf, off, buf.length - off);
      off += bytesWritten;
    }
    open.size += buf.length;
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
    const line = await this.#checkpointLine(this.#lastSeq + 1, this.#lastHash, 'rotate', this.#unsigned);
    await this.#writeDurably([line], this.#lastSeq + 1, lineHash(line));
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
   * start record. The anchor is then owed (see #ensureAnchored).
   */
  async #ensureOpen(): Promise<void> {
    if (this.#open !== undefined) return;
    if (this.#refused !== undefined) throw this.#refused;
    const now = this.#o.clock.now();
    let opened: Awaited<ReturnType<typeof openAuditLog>>;
    try {
      opened = await openAuditLog({
        dir: this.#o.dir,
        anchors: this.#o.anchors,
        keys: [this.#o.signer],
        now,
        acceptMismatch: this.#o.acknowledgeLoss !== undefined,
      });
    } catch (err) {
      if (isKeygateError(err) && err.code === 'AUDIT_ANCHOR_MISMATCH') this.#refused = err;
      throw err;
    }
    this.#open = opened.open;
    const { scan, verdict } = opened.inspection;
    this.#lastSeq = scan.lastSeq;
    this.#lastHash = scan.lastHash;
    this.#lastCheckpointAt = now.getTime();
    if (verdict.ok && verdict.adopted) {
      this.#o.onWarning?.(
        'audit log without an anchor or start records taken over as found (written before anchors)',
        {
          dir: this.#o.dir,
          lastSeq: scan.lastSeq,
        },
      );
    }
    let seq = this.#lastSeq;
    let hash = this.#lastHash;
    const lines: string[] = [];
    const add = (line: string) => {
      lines.push(line);
      hash = lineHash(line);
    };
    const time = now.toISOString();
    const keyId = this.#o.signer.keyId;
    if (!opened.clean || opened.torn !== undefined || this.#hadFailure) {
      add(
        recordLine({
          seq: ++seq,
          prev: hash,
          type: 'recovery',
          time,
          reason: this.#hadFailure ? 'write-failure' : 'unclean-shutdown',
          tornBytes: opened.torn?.bytes ?? 0,
          tornSha256: opened.torn?.sha256,
          file: opened.checkedFile,
        }),
      );
    }
    let loss: LossRecord | undefined;
    if (!verdict.ok) {
      const a = verdict.anchor;
      const line = await this.#signedLine({
        seq: ++seq,
        prev: hash,
        type: 'loss',
        time,
        problem: verdict.problem,
        anchorSeq: a?.seq,
        anchorHash: a?.hash,
        anchorBoot: a?.boot,
        foundSeq: scan.lastSeq,
        foundHash: scan.lastHash,
        reason: this.#o.acknowledgeLoss?.reason ?? '',
        keyId,
      });
      loss = JSON.parse(line) as LossRecord;
      add(line);
    }
    const boot = this.#boot > 0 ? this.#boot : verdict.nextBoot;
    if (this.#boot === 0)
      add(await this.#signedLine({ seq: ++seq, prev: hash, type: 'start', time, boot, keyId }));
    if (lines.length > 0) await this.#writeDurably(lines, seq, hash);
    this.#boot = boot;
    this.#loss ??= loss;
    this.#hadFailure = false;
    this.#anchor.note({ seq: this.#lastSeq, hash: this.#lastHash, boot });
    this.#anchorOwed = true;
  }

  /** Writes the anchor owed since the last open; the sink stays unavailable until it is written. */
  async #ensureAnchored(): Promise<void> {
    if (!this.#anchorOwed) return;
    try {
      await this.#anchor.flush();
    } catch (cause) {
      throw new AnchorUnwritten('audit anchor write failed', { cause });
    }
    this.#anchorOwed = false;
  }

  async #closeFile(): Promise<void> {
    const open = this.#open;
    this.#open = undefined;
    await open?.fh.close().catch(() => undefined);
  }

  #anchorFailed(failure: unknown): KeygateError {
    const cause = failure instanceof AnchorUnwritten ? failure.cause : failure;
    const err = new KeygateError('AUDIT_UNAVAILABLE', {
      cause,
      detail: {
        dir: this.#o.dir,
        anchor: this.#o.anchors.location,
        reason: 'the audit anchor cannot be written',
        vendorCode: (cause as NodeJS.ErrnoException)?.code ?? 'error',
      },
    });
    this.#available = false;
    this.#lastError = err;
    this.#o.onError?.(err);
    return err;
  }

  async #fail(cause: unknown): Promise<KeygateError> {
    const err =
      cause instanceof KeygateError && cause.code === 'AUDIT_UNAVAILABLE'
        ? cause
        : new KeygateError('AUDIT_UNAVAILABLE', {
            cause,
            detail: { dir: this.#o.dir, vendorCode: (cause as NodeJS.ErrnoException)?.code ?? 'error' },
          });
    this.#available = false;
    this.#lastError = err;
    this.#hadFailure = true;
    this.#checkpointDue = false;
    await this.#closeFile();
    if (!(this.#initial && cause === this.#refused)) this.#o.onError?.(err);
    return err;
  }
}
