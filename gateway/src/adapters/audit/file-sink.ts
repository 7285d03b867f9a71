import { constants } from 'node:fs';
import { type FileHandle, mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KeygateError } from '@keygate/shared/errors';
import type { AuditEvent, AuditSink } from '../../core/audit/audit-event.js';
import {
  type AuditRecord,
  type CheckpointRecord,
  checkpointSigningInput,
  eventLine,
  GENESIS_PREV,
  lineHash,
  recordLine,
} from '../../core/audit/audit-record.js';
import type { AuditSigner } from '../../core/audit/audit-signer.js';
import { splitLines } from '../../core/audit/chain-verifier.js';
import type { Clock } from '../../core/clock.js';
import { type AuditFile, auditFileName, listAuditFiles } from './audit-files.js';

/** Append, and every write durable before it returns (O_DSYNC: data plus the metadata to read it). */
const APPEND_DSYNC = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC;

export interface FileAuditSinkOptions {
  readonly dir: string;
  readonly signer: AuditSigner;
  readonly clock: Clock;
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
  /** Told about every write, sync or open failure (for logs; the cause, never a record). */
  readonly onError?: (err: KeygateError) => void;
  /** Test hook: runs before every durable write; throw to simulate a failing disk. */
  readonly beforeSync?: () => void | Promise<void>;
}

interface Pending {
  readonly event: AuditEvent;
  readonly resolve: () => void;
  readonly reject: (err: KeygateError) => void;
}

interface OpenFile {
  readonly fh: FileHandle;
  readonly file: AuditFile;
  size: number;
}

/** Counters for metrics and tests. */
export interface FileAuditSinkStats {
  /** Durable writes (each one O_DSYNC write of a batch). */
  readonly syncs: number;
  readonly events: number;
  readonly lastSeq: number;
  readonly available: boolean;
}

/**
 * The durable audit log: hash-chained JSON lines in rotating files, group commit with O_DSYNC writes,
 * signed checkpoints. `append` resolves only after its record is on disk; any write or sync
 * failure rejects the batch with AUDIT_UNAVAILABLE and makes the sink unavailable until a probe
 * (a later append, or the probe timer) reopens the log. See docs/audit.md.
 */
export class FileAuditSink implements AuditSink {
  readonly #o: Required<Omit<FileAuditSinkOptions, 'onError' | 'beforeSync'>> &
    Pick<FileAuditSinkOptions, 'onError' | 'beforeSync'>;
  #open: OpenFile | undefined;
  #lastSeq = 0;
  #lastHash = GENESIS_PREV;
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

  private constructor(opts: FileAuditSinkOptions) {
    this.#o = {
      checkpointEvery: 1000,
      checkpointIntervalMs: 60_000,
      maxFileBytes: 64 * 1024 * 1024,
      maxFileAgeMs: 24 * 3_600_000,
      maxBatch: 1024,
      probeIntervalMs: 5_000,
      ...opts,
    };
  }

  /**
   * Opens (or creates) the log in `dir`, resuming the chain from the newest file's last complete
   * record. Never throws for I/O: a sink that cannot open starts unavailable and keeps probing.
   */
  static async open(opts: FileAuditSinkOptions): Promise<FileAuditSink> {
    const sink = new FileAuditSink(opts);
    sink.#probeDue = true;
    await sink.#kick();
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
        detail: { dir: this.#o.dir, reason: 'write or open failed' },
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

  /** Writes pending records and a signed close checkpoint, then closes the file. */
  async close(): Promise<void> {
    if (this.#closing) return this.#done;
    this.#closing = true;
    for (const t of this.#timers) clearInterval(t);
    await this.#kick();
    if (this.#closeError !== undefined) throw this.#closeError;
  }

  get stats(): FileAuditSinkStats {
    return { syncs: this.#syncs, events: this.#events, lastSeq: this.#lastSeq, available: this.#available };
  }

  #startTimers(): void {
    const probe = setInterval(() => {
      if (!this.#available && !this.#closing) void this.probe();
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
        try {
          await this.#ensureOpen();
          await this.#writeBatch(batch, closeNow);
          this.#available = true;
          for (const p of batch) p.resolve();
        } catch (cause) {
          const err = await this.#fail(cause);
          for (const p of batch) p.reject(err);
          if (closeNow) this.#closeError = err;
        }
        if (closeNow) {
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
    if (lines.length > 0) await this.#writeDurably(`${lines.join('\n')}\n`);
    this.#lastSeq = seq;
    this.#lastHash = hash;
    this.#events += batch.length;
    if (reason !== undefined) {
      this.#unsigned = 0;
      this.#lastCheckpointAt = this.#o.clock.now().getTime();
    } else {
      this.#unsigned = unsigned;
    }
    this.#checkpointDue = false;
  }

  async #checkpointLine(
    seq: number,
    prev: string,
    reason: CheckpointRecord['reason'],
    count: number,
  ): Promise<string> {
    const unsigned = {
      seq,
      prev,
      type: 'checkpoint' as const,
      time: this.#o.clock.now().toISOString(),
      reason,
      count,
      keyId: this.#o.signer.keyId,
    };
    const sig = Buffer.from(await this.#o.signer.sign(checkpointSigningInput(unsigned))).toString(
      'base64url',
    );
    return recordLine({ ...unsigned, sig });
  }

  /**
   * One write on a file opened with O_DSYNC: it returns once the data (and the size change) is on
   * stable storage, like write + fdatasync, but in one system call and one thread-pool hop.
   */
  async #writeDurably(text: string): Promise<void> {
    const open = this.#requireOpen();
    const buf = Buffer.from(text, 'utf8');
    await this.#o.beforeSync?.();
    let off = 0;
    while (off < buf.length) {
      const { bytesWritten } = await open.fh.write(buf, off, buf.length - off);
      off += bytesWritten;
    }
    open.size += buf.length;
    this.#syncs++;
  }

  async #rotateIfDue(): Promise<void> {
    const open = this.#requireOpen();
    if (open.size === 0) return;
    const age = this.#o.clock.now().getTime() - open.file.startedAt;
    if (open.size < this.#o.maxFileBytes && age < this.#o.maxFileAgeMs) return;
    const line = await this.#checkpointLine(this.#lastSeq + 1, this.#lastHash, 'rotate', this.#unsigned);
    await this.#writeDurably(`${line}\n`);
    this.#lastSeq++;
    this.#lastHash = lineHash(line);
    this.#unsigned = 0;
    this.#lastCheckpointAt = this.#o.clock.now().getTime();
    await this.#closeFile();
    await this.#createFile();
  }

  #requireOpen(): OpenFile {
    if (this.#open === undefined) throw new Error('audit file is not open');
    return this.#open;
  }

  /** Opens the newest file, cutting a torn last line and resuming the chain; or starts a new log. */
  async #ensureOpen(): Promise<void> {
    if (this.#open !== undefined) return;
    await mkdir(this.#o.dir, { recursive: true });
    const files = await listAuditFiles(this.#o.dir);
    const newest = files.at(-1);
    if (newest === undefined) {
      this.#lastSeq = 0;
      this.#lastHash = GENESIS_PREV;
      this.#lastCheckpointAt = this.#o.clock.now().getTime();
      await this.#createFile();
      this.#hadFailure = false;
      return;
    }
    const path = join(this.#o.dir, newest.name);
    const bytes = await readFile(path);
    const { complete, torn } = splitLines(bytes);
    let last = complete.at(-1);
    if (last === undefined) {
      // A file created by a rotation that crashed before its first write: resume from the previous file.
      const previous = files.at(-2);
      if (previous !== undefined)
        last = splitLines(await readFile(join(this.#o.dir, previous.name))).complete.at(-1);
    }
    let lastRecord: AuditRecord | undefined;
    if (last !== undefined) {
      lastRecord = parseRecord(last);
      this.#lastSeq = lastRecord.seq;
      this.#lastHash = lineHash(last);
    } else {
      this.#lastSeq = 0;
      this.#lastHash = GENESIS_PREV;
    }
    const fh = await open(path, 'r+');
    try {
      if (torn !== undefined) {
        await fh.truncate(bytes.length - torn.length);
        await fh.datasync();
      }
    } catch (err) {
      await fh.close();
      throw err;
    }
    await fh.close();
    if (complete.length === 0 && newest.startSeq !== this.#lastSeq + 1) {
      await this.#createFile();
    } else {
      this.#open = {
        fh: await open(path, APPEND_DSYNC),
        file: newest,
        size: bytes.length - (torn?.length ?? 0),
      };
    }
    this.#lastCheckpointAt = this.#o.clock.now().getTime();
    const clean =
      lastRecord === undefined || (lastRecord.type === 'checkpoint' && lastRecord.reason === 'close');
    if (!clean || torn !== undefined || this.#hadFailure) {
      const line = recordLine({
        seq: this.#lastSeq + 1,
        prev: this.#lastHash,
        type: 'recovery',
        time: this.#o.clock.now().toISOString(),
        reason: this.#hadFailure ? 'write-failure' : 'unclean-shutdown',
        tornBytes: torn?.length ?? 0,
        tornSha256: torn === undefined ? undefined : lineHash(torn),
        file: newest.name,
      });
      await this.#writeDurably(`${line}\n`);
      this.#lastSeq++;
      this.#lastHash = lineHash(line);
    }
    this.#hadFailure = false;
  }

  async #createFile(): Promise<void> {
    const now = this.#o.clock.now();
    const name = auditFileName(this.#lastSeq + 1, now);
    const fh = await open(join(this.#o.dir, name), APPEND_DSYNC);
    this.#open = { fh, file: { name, startSeq: this.#lastSeq + 1, startedAt: now.getTime() }, size: 0 };
    // Make the new directory entry durable too, so a synced record is never in a file that vanishes.
    const dirHandle = await open(this.#o.dir, 'r');
    try {
      await dirHandle.sync();
    } finally {
      await dirHandle.close();
    }
  }

  async #closeFile(): Promise<void> {
    const open = this.#open;
    this.#open = undefined;
    await open?.fh.close().catch(() => undefined);
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
    this.#o.onError?.(err);
    return err;
  }
}

function parseRecord(line: Uint8Array): AuditRecord {
  try {
    const rec = JSON.parse(Buffer.from(line).toString('utf8')) as AuditRecord;
    if (Number.isSafeInteger(rec.seq) && typeof rec.type === 'string') return rec;
  } catch {
    // fall through
  }
  throw new KeygateError('AUDIT_UNAVAILABLE', {
    detail: { reason: 'the last audit record is unreadable; run `keygate-gateway audit verify`' },
  });
}
