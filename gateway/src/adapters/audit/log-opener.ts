import { constants } from 'node:fs';
import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { KeygateError } from '@keygate/shared/errors';
import { type AnchorVerdict, checkAgainstAnchor } from '../../core/audit/anchor-check.js';
import type { AnchorReading, AuditAnchorStore } from '../../core/audit/audit-anchor.js';
import { lineHash } from '../../core/audit/audit-record.js';
import type { AuditVerifyKey } from '../../core/audit/audit-signer.js';
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

/** A log opened for appending, with what the writer must record before anything else. */
export interface OpenedLog {
  readonly open: OpenFile;
  readonly inspection: LogInspection;
  /** The last record is a close checkpoint (or there is none): the previous run ended cleanly. */
  readonly clean: boolean;
  /** Bytes of a torn last line that were cut away, and their hash. */
  readonly torn?: { readonly bytes: number; readonly sha256: string } | undefined;
  /** The file the torn line was cut from (the newest one), for the recovery record. */
  readonly checkedFile: string;
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
 * mismatch throws AUDIT_ANCHOR_MISMATCH (unless `acceptMismatch`, for `audit acknowledge-loss`)
 * before anything is changed. Cuts a torn last line away. I/O errors throw as they are.
 */
export async function openAuditLog(o: {
  readonly dir: string;
  readonly anchors: AuditAnchorStore;
  readonly keys: readonly AuditVerifyKey[];
  readonly now: Date;
  readonly acceptMismatch: boolean;
}): Promise<OpenedLog> {
  await mkdir(o.dir, { recursive: true });
  const inspection = await inspectAuditLog(o.dir, o.anchors, o.keys, o.acceptMismatch);
  const { scan, verdict } = inspection;
  if (!verdict.ok && !o.acceptMismatch) throw anchorMismatchError(o.dir, o.anchors.location, inspection);
  const last = scan.lastRecord;
  const clean = last === undefined || (last.type === 'checkpoint' && last.reason === 'close');
  const newest = scan.newest;
  if (newest === undefined) {
    return {
      open: await createAuditFile(o.dir, scan.lastSeq + 1, o.now),
      inspection,
      clean,
      checkedFile: '',
    };
  }
  const path = join(o.dir, newest.file.name);
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
    : await createAuditFile(o.dir, scan.lastSeq + 1, o.now);
  const torn =
    newest.torn === undefined ? undefined : { bytes: newest.torn.length, sha256: lineHash(newest.torn) };
  return { open: file, inspection, clean, torn, checkedFile: newest.file.name };
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
