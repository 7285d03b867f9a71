import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KeygateError } from '@keygate/shared/errors';
import type { FoundLog } from '../../core/audit/anchor-check.js';
import { type AuditRecord, GENESIS_PREV, lineHash, type StartRecord } from '../../core/audit/audit-record.js';
import { splitLines } from '../../core/audit/chain-verifier.js';
import type { AuditFile } from './audit-files.js';

/** What the writer needs to know about a log before it appends to it. */
export interface LogScan extends FoundLog {
  /** The last complete record (undefined when the log has none). */
  readonly lastRecord?: AuditRecord | undefined;
  /** The newest file, its bytes up to its last newline, and the torn bytes after it. */
  readonly newest?: { readonly file: AuditFile; readonly kept: number; readonly torn?: Buffer | undefined };
  /** Complete lines in the newest file. */
  readonly newestLines: number;
}

/** seq and type from the fixed start of a record line, without parsing all of it. */
const HEAD = /^\{"seq":(\d+),"prev":"[0-9a-f]{64}","type":"([a-z]+)"/;

/**
 * Reads the log from its newest file back: the last record, the newest start record and, with
 * `anchorSeq`, the hash of that record. It stops at the file holding `anchorSeq` (normally the
 * newest or the one before); when there is no such record (no anchor, or a log behind it), as soon
 * as it has seen a start record.
 */
export async function scanAuditLog(
  dir: string,
  files: readonly AuditFile[],
  anchorSeq: number | undefined,
  /** Read back until a start record in any case (acknowledge-loss: the true last boot). */
  thorough = false,
): Promise<LogScan> {
  let last: { seq: number; hash: string; record: AuditRecord } | undefined;
  let lastStart: { seq: number; boot: number } | undefined;
  let hashAtAnchor: string | undefined;
  let newest: LogScan['newest'];
  let newestLines = 0;
  for (let i = files.length - 1; i >= 0; i--) {
    const file = files[i] as AuditFile;
    const bytes = await readFile(join(dir, file.name));
    const { complete, torn } = splitLines(bytes);
    if (i === files.length - 1) {
      newest = {
        file,
        kept: bytes.length - (torn?.length ?? 0),
        torn: torn === undefined ? undefined : Buffer.from(torn),
      };
      newestLines = complete.length;
    }
    for (let j = complete.length - 1; j >= 0; j--) {
      const line = complete[j] as Uint8Array;
      if (last === undefined) {
        const record = parseRecord(line);
        last = { seq: record.seq, hash: lineHash(line), record };
      }
      const head = HEAD.exec(Buffer.from(line.subarray(0, 120)).toString('latin1'));
      if (head === null) continue;
      const seq = Number(head[1]);
      if (lastStart === undefined && head[2] === 'start') {
        const boot = (parseRecord(line) as StartRecord).boot;
        if (Number.isSafeInteger(boot)) lastStart = { seq, boot };
      }
      if (seq === anchorSeq && hashAtAnchor === undefined) hashAtAnchor = lineHash(line);
      // Nothing older is needed once a start record is found at or before the anchor's record.
      if (lastStart !== undefined && (anchorSeq === undefined || seq <= anchorSeq)) break;
    }
    // Done at the anchor's file; or, when the anchor is beyond the log (or absent), at a start record.
    const reachedAnchor =
      anchorSeq !== undefined && last !== undefined && last.seq >= anchorSeq && file.startSeq <= anchorSeq;
    const anchorBeyond = anchorSeq === undefined || (last !== undefined && last.seq < anchorSeq);
    const done = (reachedAnchor && !thorough) || ((reachedAnchor || anchorBeyond) && lastStart !== undefined);
    if (done) break;
  }
  return {
    lastSeq: last?.seq ?? 0,
    lastHash: last?.hash ?? GENESIS_PREV,
    lastRecord: last?.record,
    hashAtAnchor,
    lastStart,
    newest,
    newestLines,
  };
}

function parseRecord(line: Uint8Array): AuditRecord {
  try {
    const rec = JSON.parse(Buffer.from(line).toString('utf8')) as AuditRecord;
    if (Number.isSafeInteger(rec.seq) && typeof rec.type === 'string') return rec;
  } catch {
    // fall through
  }
  throw new KeygateError('AUDIT_UNAVAILABLE', {
    detail: { reason: 'an audit record is unreadable; run `keygate-gateway audit verify`' },
  });
}
