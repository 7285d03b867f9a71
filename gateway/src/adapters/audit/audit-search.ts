import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditEvent } from '../../core/audit/audit-event.js';
import {
  type AuditChainStatus,
  type AuditPage,
  AuditPager,
  type AuditQuery,
  type AuditReader,
  chainStatus,
} from '../../core/audit/audit-search.js';
import type { AuditVerifyKey } from '../../core/audit/audit-signer.js';
import { splitLines } from '../../core/audit/chain-verifier.js';
import type { PgDatabase } from '../postgres/pg-database.js';
import { listAuditFiles } from './audit-files.js';
import { AUDIT_TABLE, verifyPostgresAudit } from './pg-audit-export.js';
import { verifyAuditDir } from './verify-dir.js';

/** Records read at most per search (newest first): a search never reads a huge log whole. */
export const SEARCH_SCAN_LIMIT = 200_000;
const PG_PAGE = 2000;

/** An event record's seq and event, or undefined for other records and unreadable lines. */
function eventOf(line: string): { seq: number; event: AuditEvent } | undefined {
  try {
    const r = JSON.parse(line) as { seq?: unknown; type?: unknown } & AuditEvent;
    if (r.type !== 'event' || typeof r.seq !== 'number') return undefined;
    return { seq: r.seq, event: r };
  } catch {
    return undefined;
  }
}

/** The file log in `dir` (audit.dir), read newest first; verified with the signing key's public half. */
export class FileAuditReader implements AuditReader {
  readonly #dir: string;
  readonly #keys: readonly AuditVerifyKey[];
  readonly #now: () => Date;

  constructor(dir: string, keys: readonly AuditVerifyKey[], now: () => Date = () => new Date()) {
    this.#dir = dir;
    this.#keys = keys;
    this.#now = now;
  }

  async search(q: AuditQuery): Promise<AuditPage> {
    const pager = new AuditPager(q);
    const files = await listAuditFiles(this.#dir).catch(() => []);
    let scanned = 0;
    for (let i = files.length - 1; i >= 0; i--) {
      const file = files[i];
      if (file === undefined) continue;
      const { complete } = splitLines(await readFile(join(this.#dir, file.name)));
      for (let j = complete.length - 1; j >= 0; j--) {
        if (++scanned > SEARCH_SCAN_LIMIT) return pager.page(SEARCH_SCAN_LIMIT);
        const r = eventOf(Buffer.from(complete[j] as Uint8Array).toString('utf8'));
        if (r !== undefined && !pager.add(r.seq, r.event)) return pager.page();
      }
    }
    return pager.page();
  }

  async verify(): Promise<AuditChainStatus> {
    let report = await verifyAuditDir(this.#dir, this.#keys, { allowPrunedStart: true });
    // The running writer may be mid-append: a torn last line is looked at again once.
    if (report.problem?.kind === 'torn') {
      await new Promise((r) => setTimeout(r, 50));
      report = await verifyAuditDir(this.#dir, this.#keys, { allowPrunedStart: true });
    }
    return chainStatus(report, this.#now());
  }
}

/** The chain in PostgreSQL (audit.target postgres), read newest first. */
export class PgAuditReader implements AuditReader {
  readonly #db: PgDatabase;
  readonly #keys: readonly AuditVerifyKey[];
  readonly #now: () => Date;

  constructor(db: PgDatabase, keys: readonly AuditVerifyKey[], now: () => Date = () => new Date()) {
    this.#db = db;
    this.#keys = keys;
    this.#now = now;
  }

  async search(q: AuditQuery): Promise<AuditPage> {
    const pager = new AuditPager(q);
    let before: string | undefined;
    let scanned = 0;
    for (;;) {
      // Filtered here, on the events' own times (the `at` column is when the row was written).
      const r = await this.#db.query<{ seq: string; line: string }>(
        `SELECT seq::text AS seq, line FROM ${AUDIT_TABLE} WHERE type = 'event'
           AND ($1::bigint IS NULL OR ${AUDIT_TABLE}.seq < $1::bigint)
         ORDER BY ${AUDIT_TABLE}.seq DESC LIMIT $2`,
        [before ?? null, PG_PAGE],
      );
      for (const row of r.rows) {
        if (++scanned > SEARCH_SCAN_LIMIT) return pager.page(SEARCH_SCAN_LIMIT);
        const e = eventOf(row.line);
        if (e !== undefined && !pager.add(e.seq, e.event)) return pager.page();
      }
      if (r.rows.length < PG_PAGE) return pager.page();
      before = r.rows[r.rows.length - 1]?.seq;
    }
  }

  async verify(): Promise<AuditChainStatus> {
    return chainStatus(
      await verifyPostgresAudit(this.#db, this.#keys, { allowPrunedStart: true }),
      this.#now(),
    );
  }
}
