import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditProblem } from '../../core/audit/audit-problem.js';
import { lineHash } from '../../core/audit/audit-record.js';
import type { AuditVerifyKey } from '../../core/audit/audit-signer.js';
import {
  type AuditVerifyReport,
  ChainVerifier,
  type ChainVerifyOptions,
} from '../../core/audit/chain-verifier.js';
import type { PgDatabase } from '../postgres/pg-database.js';
import { auditFileName, parseAuditFileName } from './audit-files.js';

/** How the table is named in reports (the "file" of a problem; lines are rows in seq order). */
export const AUDIT_TABLE = 'keygate_audit';
const PAGE = 5000;

type Reader = Pick<PgDatabase, 'query'>;

/**
 * Runs `read` on one consistent snapshot of the database (a read-only REPEATABLE READ
 * transaction): the rows and the head row it sees are those of one moment, however many replicas
 * append meanwhile.
 */
function onSnapshot<T>(db: Pick<PgDatabase, 'tx'>, read: (r: Reader) => Promise<T>): Promise<T> {
  return db.tx(
    async (client) => {
      await client.query('SET TRANSACTION READ ONLY');
      const reader: Reader = {
        query: ((sql: string, params: unknown[] = []) => client.query(sql, params)) as Reader['query'],
      };
      return read(reader);
    },
    { isolation: 'repeatable read' },
  );
}

interface Row {
  seq: string;
  hash: string;
  line: string;
}

/** Rows with seq >= `from`, in seq order, a page at a time. */
async function* pages(db: Reader, from: number): AsyncGenerator<Row[]> {
  let after = from - 1;
  for (;;) {
    const r = await db.query<Row>(
      'SELECT seq::text AS seq, hash, line FROM keygate_audit WHERE seq > $1 ORDER BY keygate_audit.seq LIMIT $2',
      [String(after), PAGE],
    );
    if (r.rows.length === 0) return;
    yield r.rows;
    after = Number(r.rows[r.rows.length - 1]?.seq);
    if (r.rows.length < PAGE) return;
  }
}

export interface VerifyPostgresOptions extends ChainVerifyOptions {
  /** Verify from this seq on (older rows pruned or not of interest); implies allowPrunedStart. */
  readonly from?: number | undefined;
}

/**
 * `audit verify --postgres`: the whole chain in keygate_audit, with the file log's verifier
 * (chain, signatures, boot order), plus what only the table has: every row's `hash` column must
 * be its line's hash, and the head row must name the last record (seq and hash): rows cut off the
 * end, or appended around the sink, are found. Problems name the table and the row's position
 * in seq order (line N = the Nth row read).
 */
export async function verifyPostgresAudit(
  db: Pick<PgDatabase, 'tx'>,
  keys: readonly AuditVerifyKey[],
  opts: VerifyPostgresOptions = {},
): Promise<AuditVerifyReport> {
  return onSnapshot(db, (reader) => verifySnapshot(reader, keys, opts));
}

async function verifySnapshot(
  db: Reader,
  keys: readonly AuditVerifyKey[],
  opts: VerifyPostgresOptions,
): Promise<AuditVerifyReport> {
  const from = opts.from ?? 1;
  const verifier = new ChainVerifier(keys, { ...opts, allowPrunedStart: opts.allowPrunedStart ?? from > 1 });
  let line = 1;
  let first = true;
  let problem: AuditProblem | undefined;
  for await (const rows of pages(db, from)) {
    const bad = rows.findIndex((r) => r.hash !== lineHash(r.line));
    const good = bad < 0 ? rows : rows.slice(0, bad);
    const bytes = Buffer.from(good.map((r) => `${r.line}\n`).join(''), 'utf8');
    problem = verifier.addFile(AUDIT_TABLE, bytes, first ? undefined : { firstLine: line });
    first = false;
    if (problem !== undefined) break;
    line += good.length;
    if (bad >= 0) {
      const row = rows[bad] as Row;
      problem = {
        kind: 'edited',
        file: AUDIT_TABLE,
        line,
        message: `row seq ${row.seq}: its hash column does not match its line (the line or the hash was changed)`,
      };
      break;
    }
  }
  if (first) verifier.addFile(AUDIT_TABLE, new Uint8Array());
  const report = verifier.finish();
  if (problem !== undefined && report.problem === undefined) return { ...report, ok: false, problem };
  if (report.problem !== undefined) return report;
  const head = await readHead(db);
  const at = { file: 'keygate_audit_head', line: 1 };
  if (head.seq > report.lastSeq) {
    return {
      ...report,
      ok: false,
      problem: {
        kind: 'cut-back',
        ...at,
        message: `the head row says the chain reached seq ${head.seq} but the table ends at seq ${report.lastSeq}: records were removed from its end`,
      },
    };
  }
  if (head.seq < report.lastSeq || head.hash !== report.lastHash) {
    return {
      ...report,
      ok: false,
      problem: {
        kind: 'replaced',
        ...at,
        message: `the head row (seq ${head.seq}) does not name the last record (seq ${report.lastSeq}) with its hash: rows were written or changed around the gateway`,
      },
    };
  }
  return report;
}

async function readHead(db: Reader): Promise<{ seq: number; hash: string }> {
  const r = await db.query<{ seq: string; hash: string }>(
    'SELECT seq::text AS seq, hash FROM keygate_audit_head WHERE id = 1',
  );
  const row = r.rows[0];
  return { seq: Number(row?.seq ?? 0), hash: row?.hash ?? '' };
}

/** `audit export` into a folder that already holds audit files (it never mixes two logs). */
export class ExportFolderNotEmpty extends Error {
  constructor(dir: string, file: string) {
    super(`${dir} already holds audit files (${file}): export to an empty folder`);
    this.name = 'ExportFolderNotEmpty';
  }
}

export interface ExportResult {
  readonly files: readonly string[];
  readonly records: number;
  readonly firstSeq: number;
  readonly lastSeq: number;
}

/**
 * `audit export`: writes the rows with seq >= `from` as audit files in `dir` (named like the file
 * log's, `recordsPerFile` lines each), byte for byte the lines the chain hashes, so `audit verify
 * DIR` checks them (with `--pruned` when `from` > 1). Refuses a folder that already holds audit
 * files (an export never mixes with another log). It reads one snapshot: rows appended while it
 * runs are not in it (the export is the chain as it was when it began).
 */
export async function exportPostgresAudit(
  db: Pick<PgDatabase, 'tx'>,
  dir: string,
  opts: { readonly from?: number; readonly recordsPerFile?: number; readonly now?: Date } = {},
): Promise<ExportResult> {
  await mkdir(dir, { recursive: true });
  const existing = (await readdir(dir)).filter((n) => parseAuditFileName(n) !== undefined);
  if (existing.length > 0) throw new ExportFolderNotEmpty(dir, existing[0] ?? '');
  return onSnapshot(db, (reader) => exportSnapshot(reader, dir, opts));
}

async function exportSnapshot(
  db: Reader,
  dir: string,
  opts: { readonly from?: number; readonly recordsPerFile?: number; readonly now?: Date },
): Promise<ExportResult> {
  const perFile = opts.recordsPerFile ?? 100_000;
  const now = opts.now ?? new Date();
  const files: string[] = [];
  let buffer: string[] = [];
  let bufferStart = 0;
  let records = 0;
  let firstSeq = 0;
  let lastSeq = 0;
  const flush = async () => {
    if (buffer.length === 0) return;
    const name = auditFileName(bufferStart, now);
    await writeFile(join(dir, name), `${buffer.join('\n')}\n`, { flag: 'wx', mode: 0o640 });
    files.push(name);
    buffer = [];
  };
  for await (const rows of pages(db, opts.from ?? 1)) {
    for (const r of rows) {
      const seq = Number(r.seq);
      if (buffer.length === 0) bufferStart = seq;
      if (firstSeq === 0) firstSeq = seq;
      buffer.push(r.line);
      lastSeq = seq;
      records++;
      if (buffer.length >= perFile) await flush();
    }
  }
  await flush();
  return { files, records, firstSeq, lastSeq };
}
