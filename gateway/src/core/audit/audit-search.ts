import type { AuditEvent, AuditOutcome } from './audit-event.js';
import type { AuditVerifyReport } from './chain-verifier.js';

/**
 * Reading the audit log back (the console's audit page): search event records, newest first, and
 * verify the chain. A port: the file log and the PostgreSQL chain each have an adapter.
 */
export interface AuditQuery {
  /** Events at or after this time. */
  readonly from?: Date | undefined;
  /** Events at or before this time. */
  readonly to?: Date | undefined;
  /** Matches the token subject (`NAME` also finds the console's `console:NAME`) or the certificate identity, exactly. */
  readonly identity?: string | undefined;
  readonly keyId?: string | undefined;
  /** An operation name (`key.rotate`), or a prefix ending in a dot (`key.`). */
  readonly operation?: string | undefined;
  readonly outcome?: AuditOutcome | undefined;
  /** 0-based. */
  readonly page: number;
  readonly pageSize: number;
}

export interface AuditHit {
  readonly seq: number;
  readonly event: AuditEvent;
}

export interface AuditPage {
  readonly hits: readonly AuditHit[];
  /** There are more matches after this page. */
  readonly more: boolean;
  /** The search stopped after this many records (the oldest were not read); undefined when it read them all. */
  readonly scanLimit?: number | undefined;
}

/** The chain's state when last verified (docs/audit.md "Verify"). */
export interface AuditChainStatus {
  readonly ok: boolean;
  /** ISO 8601. */
  readonly checkedAt: string;
  readonly records: number;
  readonly lastSeq: number;
  /** The first problem, in words (file and line included). */
  readonly problem?: string | undefined;
}

export interface AuditReader {
  search(query: AuditQuery): Promise<AuditPage>;
  verify(): Promise<AuditChainStatus>;
}

/** Does `event` match `q` (time, identity, key, operation, outcome)? */
export function matchesAuditQuery(event: AuditEvent, q: AuditQuery): boolean {
  const t = Date.parse(event.time);
  if (q.from !== undefined && !(t >= q.from.getTime())) return false;
  if (q.to !== undefined && !(t <= q.to.getTime())) return false;
  if (
    q.identity !== undefined &&
    event.subject !== q.identity &&
    event.subject !== `console:${q.identity}` &&
    event.certIdentity !== q.identity
  )
    return false;
  if (q.keyId !== undefined && event.keyId !== q.keyId) return false;
  if (q.operation !== undefined) {
    const op = q.operation;
    if (op.endsWith('.') ? !event.operation.startsWith(op) : event.operation !== op) return false;
  }
  if (q.outcome !== undefined && event.outcome !== q.outcome) return false;
  return true;
}

/**
 * Collects the page of `q` from records fed newest first. Feed each record with `add`; it
 * returns false once the page and the look-ahead record are found (stop reading).
 */
export class AuditPager {
  readonly #q: AuditQuery;
  readonly #hits: AuditHit[] = [];
  #skipped = 0;
  #more = false;

  constructor(q: AuditQuery) {
    this.#q = q;
  }

  add(seq: number, event: AuditEvent): boolean {
    if (!matchesAuditQuery(event, this.#q)) return true;
    if (this.#skipped < this.#q.page * this.#q.pageSize) {
      this.#skipped++;
      return true;
    }
    if (this.#hits.length >= this.#q.pageSize) {
      this.#more = true;
      return false;
    }
    this.#hits.push({ seq, event });
    return true;
  }

  page(scanLimit?: number): AuditPage {
    return { hits: this.#hits, more: this.#more, scanLimit };
  }
}

/** The verify report as the console shows it. */
export function chainStatus(report: AuditVerifyReport, checkedAt: Date): AuditChainStatus {
  const p = report.problem;
  return {
    ok: report.ok,
    checkedAt: checkedAt.toISOString(),
    records: report.records,
    lastSeq: report.lastSeq,
    problem: p === undefined ? undefined : `${p.kind} at ${p.file}:${p.line}: ${p.message}`,
  };
}
