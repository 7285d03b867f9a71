/**
 * What H1 (h1.bench.ts) reads from its PostgreSQL, by psql and the gateway CLI: statement counts
 * (pg_stat_statements), the audit chain's head and batches, its success records, and
 * `audit verify --postgres`. The queries sent while a case is measured end in `-- bench`, so that
 * statementCalls leaves them out.
 */
import { execFileSync } from 'node:child_process';
import type { TestPostgres } from '@keygate/gateway/testing/postgres';
import { GATEWAY_CLI } from '#devstack/paths.js';
import type { PreparedStack } from './lib/stack.js';

/** Calls of every statement in the database so far (pg_stat_statements), by normalized text. */
export function statementCalls(pg: TestPostgres): Map<string, number> {
  const rows = pg.psql(
    `SELECT calls, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) FROM pg_stat_statements
     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%-- bench%'`,
  );
  const out = new Map<string, number>();
  for (const row of rows.trim().split('\n')) {
    const bar = row.indexOf('|');
    if (bar > 0) {
      const q = row.slice(bar + 1);
      out.set(q, (out.get(q) ?? 0) + Number(row.slice(0, bar)));
    }
  }
  return out;
}

export function headSeq(pg: TestPostgres): number {
  return Number(pg.psql('SELECT seq FROM keygate_audit_head WHERE id = 1 -- bench').trim());
}

/** Records of the chain in (fromSeq, toSeq] and the transactions that wrote them. */
export function chainBatches(
  pg: TestPostgres,
  fromSeq: number,
  toSeq: number,
): { records: number; transactions: number; perTx: number } {
  const row = pg.psql(
    `SELECT count(*), count(DISTINCT (replica, at)) FROM keygate_audit WHERE seq > ${fromSeq} AND seq <= ${toSeq} -- bench`,
  );
  const [records, transactions] = row.trim().split('|').map(Number) as [number, number];
  return { records, transactions, perTx: transactions > 0 ? records / transactions : Number.NaN };
}

/** Success records of wraps and unwraps in the one chain (every replica's). */
export function auditedSuccesses(pg: TestPostgres): { wrap: number; unwrap: number } {
  const out = pg.psql(
    `SELECT line::jsonb->>'operation', count(*) FROM keygate_audit
     WHERE type = 'event' AND line::jsonb->>'outcome' = 'success'
       AND line::jsonb->>'operation' IN ('wrap', 'unwrap') GROUP BY 1`,
  );
  const got = { wrap: 0, unwrap: 0 };
  for (const row of out.trim().split('\n')) {
    const [op, n] = row.split('|');
    if (op === 'wrap' || op === 'unwrap') got[op] = Number(n);
  }
  return got;
}

/** `keygate-gateway audit verify --postgres --sealed`: every replica closed its run. */
export function verifyChain(p: PreparedStack, config: string): { ok: boolean; text: string } {
  try {
    const out = execFileSync(
      process.execPath,
      [
        GATEWAY_CLI,
        'audit',
        'verify',
        '--postgres',
        '--config',
        config,
        '--key',
        p.auditPublicKeyFile,
        '--sealed',
      ],
      { env: { ...process.env, ...p.env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
    );
    return { ok: true, text: out.split('\n')[0] ?? '' };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, text: `${e.stdout ?? ''}${e.stderr ?? ''}`.trim().split('\n')[0] ?? 'failed' };
  }
}
