import { constants } from 'node:fs';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { KeygateError } from '@keygate/shared/errors';
import { type AnchorVerdict, checkAgainstAnchor } from '../../core/audit/anchor-check.js';
import type { AnchorReading, AuditAnchorStore } from '../../core/audit/audit-anchor.js';
import { lineHash } from '../../core/audit/audit-record.js';
import type { AuditSigner, AuditVerifyKey } from '../../core/audit/audit-signer.js';
import { type OpeningRecords, openingRecords } from '../../core/audit/record-lines.js';
import { syncFolder } from '../durable-file.js';
import { type AuditFile, auditFileName, listAuditFiles } from './audit-files.js';
import { type LogScan, scanAuditLog } from './log-scan.js';

/** Append, and every write durable before it returns (O_DSYNC: data plus the metadata to read it). */
const APPEND_DSYNC = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_DSYNC;

/** The file the writer appends to. */
export interface OpenFile {
  readonly fh: FileHandle;
  readonly file: AuditFile;
  size: number;
}

/** The log folder and its anchor, read and compared. */
export interface LogInspection {
  readonly scan: LogScan;
  readonly reading: AnchorReading;
  readonly verdict: AnchorVerdict;
}

/** A log opened for appending, with the records the writer must write before anything else. */
export interface OpenedLog {
  readonly open: OpenFile;
  readonly inspection: LogInspection;
  /** Recovery, loss and start records as due, chained on from the last record found. */
  readonly due: OpeningRecords;
  /** The run's boot: the one given, or the next one for a new run. */
  readonly boot: number;
}

/** Reads the log in `dir` and its anchor and compares them; changes nothing. */
export async function inspectAuditLog(
  dir: string,
  anchors: AuditAnchorStore,
  keys: readonly AuditVerifyKey[],
  /** Read back to the last start record even past the anchor's file (for acknowledge-loss). */
  thorough = false,
): Promise<LogInspection> {
  const reading = await anchors.read();
  let files: AuditFile[] = [];
  try {
    files = await listAuditFiles(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const anchorSeq = reading.kind === 'anchor' ? reading.anchor.seq : undefined;
  const scan = await scanAuditLog(dir, files, anchorSeq, thorough);
  return { scan, reading, verdict: checkAgainstAnchor(reading, keys, scan) };
}

/**
 * Opens (or creates) the log in `dir` for appending, after checking it against its anchor: a
 * mismatch throws AUDIT_ANCHOR_MISMATCH (unless `acknowledgeLoss`, which records it) before
 * anything is changed. Cuts a torn last line away. I/O errors throw as they are.
 */
export async function openAuditLog(o: {
  readonly dir: string;
  readonly anchors: AuditAnchorStore;
  readonly signer: AuditSigner;
  readonly now: Date;
  readonly acknowledgeLoss?: { readonly reason: string } | undefined;
  /** The writer's last write failed: a `write-failure` recovery record. */
  readonly hadFailure: boolean;
  /** The writer's run, when it already started one (0: a new run, with a start record). */
  readonly boot: number;
  /** Told when a log without anchor or start records is taken over (written before anchors). */
  readonly onWarning?:
    | ((message: string, detail: Readonly<Record<string, string | number>>) => void)
    | undefined;
}): Promise<OpenedLog> {
  await mkdir(o.dir, { recursive: true });
  const acknowledging = o.acknowledgeLoss !== undefined;
  const inspection = await inspectAuditLog(o.dir, o.anchors, [o.signer], acknowledging);
  const { scan, verdict } = inspection;
  if (!verdict.ok && !acknowledging) throw anchorMismatchError(o.dir, o.anchors.location, inspection);
  if (verdict.ok && verdict.adopted) {
    const message =
      'audit log without an anchor or start records taken over as found (written before anchors)';
    o.onWarning?.(message, { dir: o.dir, lastSeq: scan.lastSeq });
  }
  const { open, torn } = await openNewest(o.dir, scan, o.now);
  const last = scan.lastRecord;
  const clean = last === undefined || (last.type === 'checkpoint' && last.reason === 'close');
  const recovery =
    clean && torn === undefined && !o.hadFailure
      ? undefined
      : {
          reason: o.hadFailure ? ('write-failure' as const) : ('unclean-shutdown' as const),
          tornBytes: torn?.length ?? 0,
          tornSha256: torn === undefined ? undefined : lineHash(torn),
          file: scan.newest?.file.name ?? '',
        };
  const boot = o.boot > 0 ? o.boot : verdict.nextBoot;
  const state = { lastSeq: scan.lastSeq, lastHash: scan.lastHash, recovery, verdict };
  const due = await openingRecords(
    { ...state, lossReason: o.acknowledgeLoss?.reason ?? '', startBoot: o.boot > 0 ? undefined : boot },
    o.signer,
    o.now.toISOString(),
  );
  return { open, inspection, due, boot };
}

/** Cuts the newest file's torn line away and opens it for appending, or starts a new file. */
async function openNewest(dir: string, scan: LogScan, now: Date): Promise<{ open: OpenFile; torn?: Buffer }> {
  const newest = scan.newest;
  if (newest === undefined) return { open: await createAuditFile(dir, scan.lastSeq + 1, now) };
  const path = join(dir, newest.file.name);
  if (newest.torn !== undefined) {
    const fh = await open(path, 'r+');
    try {
      await fh.truncate(newest.kept);
      await fh.datasync();
    } finally {
      await fh.close();
    }
  }
  // An empty newest file that does not continue the chain (a rotation that crashed before its
  // first write, or a file emptied since) is left alone: a new file starts where the chain is.
  const continues = scan.newestLines > 0 || newest.file.startSeq === scan.lastSeq + 1;
  const file: OpenFile = continues
    ? { fh: await open(path, APPEND_DSYNC), file: newest.file, size: newest.kept }
    : await createAuditFile(dir, scan.lastSeq + 1, now);
  return { open: file, torn: newest.torn };
}

/** Appends `text` with one O_DSYNC write (more if the system writes it in parts): durable once it returns. */
export async function appendToFile(file: OpenFile, text: string): Promise<void> {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    const { bytesWritten } = await file.fh.write(buf, off, buf.length - off);
    off += bytesWritten;
  }
  file.size += buf.length;
}

/** Creates the file whose first record will be `startSeq`, and makes its name durable. */
export async function createAuditFile(dir: string, startSeq: number, now: Date): Promise<OpenFile> {
  const name = auditFileName(startSeq, now);
  const fh = await open(join(dir, name), APPEND_DSYNC);
  // A synced record must never be in a file whose name vanishes in a crash.
  try {
    await syncFolder(dir);
  } catch (err) {
    await fh.close();
    throw err;
  }
  return { fh, file: { name, startSeq, startedAt: now.getTime() }, size: 0 };
}

/** AUDIT_ANCHOR_MISMATCH with what the anchor says and what was found (log fields only, no secrets). */
function anchorMismatchError(dir: string, anchor: string, i: LogInspection): KeygateError {
  const v = i.verdict;
  if (v.ok) throw new RangeError('the log matches its anchor');
  return new KeygateError('AUDIT_ANCHOR_MISMATCH', {
    detail: {
      dir,
      anchor,
      problem: v.problem,
      reason: v.message,
      anchorSeq: v.anchor?.seq,
      anchorBoot: v.anchor?.boot,
      anchorHash: v.anchor?.hash,
      foundSeq: i.scan.lastSeq,
      foundHash: i.scan.lastHash,
      foundBoot: i.scan.lastStart?.boot,
    },
  });
}
