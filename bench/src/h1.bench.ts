/**
 * H1: wrap+unwrap round trips (one wrap, then one unwrap of its result, as a shim with NEW_DEK
 * does) through
 *   (a) one gateway on the JSON file store with the file audit log (the baseline),
 *   (b) one gateway on PostgreSQL (store and audit chain),
 *   (c) three gateway replicas on that PostgreSQL, the client's connections spread round-robin
 *       over the three URLs,
 *   (d) three more replicas on that PostgreSQL store but each with its own file audit log (a
 *       diagnosis: what of (c)'s cost is the one audit chain, what three processes on two cores),
 * on the same SoftHSM2 token, interleaved rounds, 16 and 64 concurrent. Prints throughput,
 * p50/p99 and the ratios (b)/(a), (c)/(a) and (d)/(a), and, with (b), (c) and (d) each run
 * alone for one round, per round trip: SQL statements (pg_stat_statements), audit transactions
 * and records per transaction (from the chain). No target: the figure is what the shared store
 * costs. The check is that nothing breaks: no failed round trip, and the one audit chain holds
 * exactly one success record per answered wrap and unwrap of (b) and (c), and verifies.
 *
 * This machine has 2 vCPUs: three replicas (plus PostgreSQL, SoftHSM2 and the load generator)
 * share them, so (c) cannot scale throughput here; it shows the cost, not the scaling.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { startTestPostgres, type TestPostgres } from '@keygate/gateway/testing/postgres';
import { GATEWAY_CLI } from '#devstack/paths.js';
import { auditedSuccesses, chainBatches, headSeq, statementCalls, verifyChain } from './h1-pg-probes.js';
import { fmt, interleave, line, runLoad, type Summary, warmUp } from './lib/measure.js';
import { type BenchResult, mainIf, type Point, point } from './lib/result.js';
import {
  fetchToken,
  type GatewayYaml,
  gatewayConfigFor,
  MtlsClient,
  type PreparedStack,
  prepare,
  type RunningGateway,
  stackTls,
  startGateway,
  timing,
} from './lib/stack.js';

export const H1_CONCURRENCY = [16, 64];
export const H1_CASES = ['file', 'pg1', 'pg3', 'pg3f'] as const;
export type H1Case = (typeof H1_CASES)[number];
export const H1_LABELS: Record<H1Case, string> = {
  file: '(a) 1 gateway, file store + file audit',
  pg1: '(b) 1 gateway, PostgreSQL',
  pg3: '(c) 3 replicas, PostgreSQL',
  pg3f: '(d) 3 replicas, PostgreSQL store, file audit',
};
/** The cases whose audit records go to the PostgreSQL chain. */
const CHAINED: readonly H1Case[] = ['pg1', 'pg3'];

/**
 * The gateway config's store (and, unless `fileAudit`, its audit) pointed at `pg`, as ha-stack.ts
 * does for the multi-replica suite. With `fileAudit` each replica keeps its own audit folder.
 */
function onPostgres(pg: TestPostgres, replica: string, fileAudit = false): (cfg: GatewayYaml) => void {
  return (cfg) => {
    const audit = cfg.audit as { signingKeyFile: string };
    cfg.store = {
      postgres: {
        url: `postgresql://${pg.user}@${pg.host}:${pg.port}/${pg.database}`,
        passwordFile: pg.passwordFile,
      },
    };
    if (!fileAudit) cfg.audit = { target: 'postgres', signingKeyFile: audit.signingKeyFile, replica };
  };
}

/** The token and headers for one gateway (tokens are issued per connection's certificate). */
async function headersFor(p: PreparedStack, url: string): Promise<Record<string, string>> {
  const setup = new MtlsClient(url, stackTls(p), 1);
  try {
    const token = await fetchToken(setup, readFileSync(p.apiKeyFile, 'utf8').trim());
    return {
      'content-type': 'application/json',
      accept: 'application/json',
      authorization: `Bearer ${token}`,
      'bluemix-instance': p.instanceId,
    };
  } finally {
    await setup.close();
  }
}

interface Target {
  readonly clients: MtlsClient[];
  readonly headers: Record<string, string>[];
}

/** Answered (HTTP 200) wraps and unwraps through the PostgreSQL gateways, to compare with the chain. */
const answered = { wrap: 0, unwrap: 0 };

/**
 * One round trip per call. Each in-flight call holds a lane; lane i always goes to URL i mod n,
 * so the c connections are spread round-robin over the URLs (ceil(c/n) per URL at most).
 */
function roundTrip(p: PreparedStack, t: Target, c: number, count: boolean): () => Promise<void> {
  const free = Array.from({ length: c }, (_, i) => c - 1 - i);
  const aad = ['keygate-shim', p.crkId];
  const wrapPath = `/api/v2/keys/${p.crkId}/actions/wrap`;
  const unwrapPath = `/api/v2/keys/${p.crkId}/actions/unwrap`;
  return async () => {
    const lane = free.pop();
    if (lane === undefined) throw new Error('more calls in flight than lanes');
    try {
      const n = lane % t.clients.length;
      const client = t.clients[n] as MtlsClient;
      const headers = t.headers[n] as Record<string, string>;
      const plaintext = randomBytes(32).toString('base64');
      const w = await client.post(wrapPath, JSON.stringify({ plaintext, aad }), headers);
      if (w.status !== 200) throw new Error(`wrap: HTTP ${w.status} ${w.text.slice(0, 120)}`);
      if (count) answered.wrap++;
      const { ciphertext } = JSON.parse(w.text) as { ciphertext: string };
      const u = await client.post(unwrapPath, JSON.stringify({ ciphertext, aad }), headers);
      if (u.status !== 200) throw new Error(`unwrap: HTTP ${u.status} ${u.text.slice(0, 120)}`);
      if (count) answered.unwrap++;
      if ((JSON.parse(u.text) as { plaintext: string }).plaintext !== plaintext) {
        throw new Error('unwrap returned another plaintext');
      }
    } finally {
      free.push(lane);
    }
  };
}

export async function runH1(): Promise<BenchResult> {
  const t0 = performance.now();
  const t = timing();
  const p = await prepare();
  const tls = stackTls(p);
  answered.wrap = 0;
  answered.unwrap = 0;
  // Durable settings (fsync, synchronous_commit on): the same promise the file audit log keeps.
  // pg_stat_statements: what one round trip asks of the database (counted as each statement ends).
  const pg = await startTestPostgres({ settings: { shared_preload_libraries: 'pg_stat_statements' } });
  pg.psql('CREATE EXTENSION pg_stat_statements');
  const gateways: RunningGateway[] = [];
  const notes: string[] = [];
  try {
    // The dev stack made its root key in the JSON file store: move it into PostgreSQL as an operator would.
    const pgConfig = gatewayConfigFor(p, { name: 'h1-pg-migrate', edit: onPostgres(pg, 'h1-pg-migrate') });
    execFileSync(
      process.execPath,
      [GATEWAY_CLI, 'store', 'migrate-from-file', '--config', pgConfig, '--from', p.gatewayConfig],
      { env: { ...process.env, ...p.env }, stdio: 'pipe' },
    );
    const file = await startGateway(p, { name: 'h1-file' });
    const replicas = await Promise.all(
      ['h1-pg-a', 'h1-pg-b', 'h1-pg-c'].map((name) => startGateway(p, { name, edit: onPostgres(pg, name) })),
    );
    // (d): the same three replicas' shape, but each with its own file audit log: what is left of
    // (c)'s cost without the one chain (three processes on two cores, the shared store).
    const fileAudited = await Promise.all(
      ['h1-pgf-a', 'h1-pgf-b', 'h1-pgf-c'].map((name) =>
        startGateway(p, { name, edit: onPostgres(pg, name, true) }),
      ),
    );
    gateways.push(file, ...replicas, ...fileAudited);
    const [pgA1] = replicas as [RunningGateway, RunningGateway, RunningGateway];
    const urls: Record<H1Case, string[]> = {
      file: [file.url],
      pg1: [pgA1.url],
      pg3: replicas.map((r) => r.url),
      pg3f: fileAudited.map((r) => r.url),
    };
    const headers = new Map<string, Record<string, string>>();
    for (const url of [file.url, ...urls.pg3, ...urls.pg3f]) headers.set(url, await headersFor(p, url));
    console.log(
      'H1 wrap+unwrap round trips; NOTE: 2 vCPU machine: 3 replicas share the cores with PostgreSQL, SoftHSM2 and the client, so (c) shows the cost of the shared store, not scaling',
    );
    const points: Point[] = [];
    const extra: Record<string, number | string | boolean> = {};
    let errors = 0;
    let warmed = false;
    for (const c of H1_CONCURRENCY) {
      const targets = Object.fromEntries(
        H1_CASES.map((k) => {
          const n = urls[k].length;
          return [
            k,
            {
              clients: urls[k].map((u) => new MtlsClient(u, tls, Math.ceil(c / n))),
              headers: urls[k].map((u) => headers.get(u) as Record<string, string>),
            },
          ];
        }),
      ) as Record<H1Case, Target>;
      const calls = Object.fromEntries(
        H1_CASES.map((k) => [k, roundTrip(p, targets[k], c, CHAINED.includes(k))]),
      ) as Record<H1Case, () => Promise<void>>;
      if (!warmed) {
        for (const k of H1_CASES) await warmUp(calls[k], t.warmMs);
        warmed = true;
      }
      // Open every connection before measuring (handshakes are G3's subject).
      for (const k of H1_CASES) await Promise.all(Array.from({ length: c }, () => calls[k]()));
      const r = await interleave(
        H1_CASES.map((k) => ({ name: k, call: calls[k] })),
        { concurrency: c, rounds: t.rounds, roundMs: t.roundMs },
      );
      const s = (k: H1Case) => r.cases[k] as Summary;
      console.log(`  c=${c}`);
      for (const k of H1_CASES) {
        console.log(`    ${line(k, s(k))}`);
        errors += s(k).errors;
        extra[`${k}RoundTrips${c}`] = Math.round(s(k).throughput);
        extra[`${k}P50ms${c}`] = Math.round(s(k).p50 * 100) / 100;
        extra[`${k}P99ms${c}`] = Math.round(s(k).p99 * 100) / 100;
      }
      const ratios: string[] = [];
      for (const k of H1_CASES.filter((x) => x !== 'file')) {
        const pt = point(c, s(k), s('file'));
        if (k === 'pg3') points.push(pt);
        extra[`${k}Ratio${c}`] = Math.round(pt.ratio * 1000) / 1000;
        extra[`${k}P99Ratio${c}`] = Math.round(pt.p99Ratio * 100) / 100;
        ratios.push(`${k}/file ${fmt(pt.ratio, 3)} (p99 ${fmt(pt.p99Ratio, 2)}x)`);
      }
      console.log(`    ${ratios.join('   ')}`);
      // What one round trip costs the database, on (b), (c) and (d) alone: statements
      // (pg_stat_statements, counted as each ends) and audit transactions and records per
      // transaction (from the chain itself: `at` is the transaction's start time).
      for (const k of ['pg1', 'pg3', 'pg3f'] as const) {
        const before = statementCalls(pg);
        const seq0 = headSeq(pg);
        const alone = await runLoad(calls[k], c, t.roundMs);
        const after = statementCalls(pg);
        const chain = chainBatches(pg, seq0, headSeq(pg));
        const rt = Math.max(1, alone.ops);
        const perStatement = [...after]
          .map(([q, n]) => [q, (n - (before.get(q) ?? 0)) / rt] as const)
          .filter(([, n]) => n > 0)
          .sort((x, y) => y[1] - x[1]);
        const statements = perStatement.reduce((sum, [, n]) => sum + n, 0);
        extra[`${k}StatementsPerRoundTrip${c}`] = Math.round(statements * 100) / 100;
        extra[`${k}AuditTxPerRoundTrip${c}`] = Math.round((chain.transactions / rt) * 100) / 100;
        if (CHAINED.includes(k)) extra[`${k}RecordsPerAuditTx${c}`] = Math.round(chain.perTx * 10) / 10;
        console.log(
          `    ${k} alone: ${fmt(alone.ops / alone.seconds)} round trips/s; per round trip ${fmt(statements, 2)} SQL statements, ${fmt(chain.transactions / rt, 2)} audit transactions (${fmt(chain.perTx, 1)} records each)`,
        );
        for (const [q, n] of perStatement.slice(0, 6)) console.log(`      ${fmt(n, 3).padStart(6)}  ${q}`);
      }
      await Promise.all(H1_CASES.flatMap((k) => targets[k].clients.map((x) => x.close())));
    }
    // Stop the replicas (SIGTERM: each commits its close checkpoint), then compare the chain with the answers.
    await Promise.all(replicas.map((r) => r.proc.stop()));
    const audited = auditedSuccesses(pg);
    const verdict = verifyChain(p, pgConfig);
    const auditOk = audited.wrap === answered.wrap && audited.unwrap === answered.unwrap && verdict.ok;
    console.log(
      `  PostgreSQL chain: answered ${answered.wrap} wraps / ${answered.unwrap} unwraps, audited ${audited.wrap} / ${audited.unwrap}; verify: ${verdict.text}`,
    );
    notes.push(
      '2 vCPU machine: 3 replicas cannot scale throughput here; (c) shows the cost of the shared store.',
    );
    const worst = Math.min(...points.map((x) => x.ratio));
    return {
      id: 'H1',
      title: 'wrap+unwrap round trips: 3 replicas on PostgreSQL vs 1 gateway on the file store',
      target: 'reported, no target; no failed round trip and audited == answered',
      value: worst,
      unit: 'x file store (3 replicas, worst of 16/64)',
      met: errors === 0 && auditOk,
      points,
      extra: {
        ...extra,
        errors,
        answeredWraps: answered.wrap,
        answeredUnwraps: answered.unwrap,
        auditedWraps: audited.wrap,
        auditedUnwraps: audited.unwrap,
        chainVerifies: verdict.ok,
      },
      notes,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await Promise.all(gateways.map((g) => g.proc.stop()));
    pg.remove();
  }
}

await mainIf(import.meta.url, runH1);
