/**
 * A1: the PostgreSQL audit sink's insert rate with group commit, against the file audit log, in
 * one process on the same machine in the same run, interleaved rounds: N concurrent appenders
 * (1, 16, 64), each awaiting its record's durability (COMMIT with fsync on / an O_DSYNC write)
 * before the next, as a gateway's requests do. Prints records/s, p50/p99 of one append, the
 * ratio PostgreSQL / file and the mean batch (records per transaction or per durable write).
 * No target: the figure says what one chain for all replicas costs against one file per gateway.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  type AuditEvent,
  createAuditKeyFile,
  FileAuditAnchorStore,
  FileAuditSink,
  KeyFileAuditSigner,
  PgAuditSink,
  PgDatabase,
  poolConfig,
  postgresSettingsSchema,
} from '@keygate/gateway/audit-sinks';
import { startTestPostgres } from '@keygate/gateway/testing/postgres';
import { systemClock } from '@keygate/shared';
import { createLogger } from '@keygate/shared/log';
import { fmt, interleave, line, type Summary, warmUp } from './lib/measure.js';
import { type BenchResult, mainIf, type Point, point } from './lib/result.js';
import { BENCH_HOME, timing } from './lib/stack.js';

export const A1_CONCURRENCY = [1, 16, 64];

/** A record shaped like an answered unwrap's (ids and a DEK hash, never key material). */
function unwrapEvent(): AuditEvent {
  return {
    time: new Date().toISOString(),
    requestId: randomUUID(),
    certIdentity: 'spiffe://bench.keygate/cluster/dev',
    subject: 'dev-cluster',
    instance: '6a4c5e1e-4f0b-4bcb-9a3c-1f1de1e0a001',
    keyId: '0e0e4c1c-62a4-4d8a-b4a4-6e5b3b9f2c11',
    keyVersion: '1',
    operation: 'unwrap',
    outcome: 'success',
    latencyMs: 1.2,
    wrappedDekHash: 'sha256:3f1a9c0d2b7e4f55',
  };
}

export async function runA1(): Promise<BenchResult> {
  const t0 = performance.now();
  const t = timing();
  const home = join(BENCH_HOME, 'a1');
  rmSync(home, { recursive: true, force: true });
  mkdirSync(home, { recursive: true });
  const keyFile = join(home, 'audit-signing.pem');
  await createAuditKeyFile(keyFile);
  const signer = await KeyFileAuditSigner.fromFile(keyFile);
  // Durable settings on both sides: PostgreSQL's defaults (fsync, synchronous_commit on), O_DSYNC.
  const pg = await startTestPostgres();
  const settings = postgresSettingsSchema.parse({
    host: pg.host,
    port: pg.port,
    database: pg.database,
    user: pg.user,
    passwordFile: pg.passwordFile,
  });
  const db = new PgDatabase({
    pool: poolConfig(settings, 'a1'),
    describe: 'a1',
    logger: createLogger({ level: 'warn', name: 'a1' }),
  });
  let pgSink: PgAuditSink | undefined;
  let fileSink: FileAuditSink | undefined;
  try {
    await db.open();
    if (!db.status().ready) throw new Error(`database not ready: ${JSON.stringify(db.status())}`);
    // The key the records name, active: the sink checks it (the destroy guard) as a gateway's would.
    const e = unwrapEvent();
    await db.query(
      'INSERT INTO keygate_keys (instance, id, name, state, creation_date, last_update_date) VALUES ($1, $2, $3, 1, now(), now())',
      [e.instance, e.keyId, 'a1-key'],
    );
    pgSink = await PgAuditSink.open({ database: db, signer, clock: systemClock, replica: 'a1' });
    fileSink = await FileAuditSink.open({
      dir: join(home, 'file'),
      signer,
      clock: systemClock,
      anchors: new FileAuditAnchorStore(join(home, 'file.anchor.json')),
    });
    const pgS = pgSink;
    const fileS = fileSink;
    if (!pgS.stats.available || !fileS.stats.available) throw new Error('a sink is unavailable');
    const pgCall = () => pgS.append(unwrapEvent());
    const fileCall = () => fileS.append(unwrapEvent());
    await warmUp(pgCall, t.warmMs);
    await warmUp(fileCall, t.warmMs);
    console.log('A1 audit appends: PostgreSQL chain (group commit) vs file log (O_DSYNC), one process');
    const points: Point[] = [];
    const extra: Record<string, number> = {};
    let errors = 0;
    for (const c of A1_CONCURRENCY) {
      const pg0 = pgS.stats;
      const f0 = fileS.stats;
      const r = await interleave(
        [
          { name: 'pg', call: pgCall },
          { name: 'file', call: fileCall },
        ],
        { concurrency: c, rounds: t.rounds, roundMs: t.roundMs },
      );
      const pgBatch = (pgS.stats.events - pg0.events) / (pgS.stats.transactions - pg0.transactions);
      const fileBatch = (fileS.stats.events - f0.events) / (fileS.stats.syncs - f0.syncs);
      const m = r.cases.pg as Summary;
      const b = r.cases.file as Summary;
      errors += m.errors + b.errors;
      const pt = point(c, m, b);
      points.push(pt);
      extra[`pgRecords${c}`] = Math.round(m.throughput);
      extra[`fileRecords${c}`] = Math.round(b.throughput);
      extra[`ratio${c}`] = Math.round(pt.ratio * 1000) / 1000;
      extra[`pgBatch${c}`] = Math.round(pgBatch * 10) / 10;
      extra[`fileBatch${c}`] = Math.round(fileBatch * 10) / 10;
      console.log(
        `  c=${c}\n    ${line('PostgreSQL sink', m)}  batch ${fmt(pgBatch, 1)}\n    ${line('file sink', b)}  batch ${fmt(fileBatch, 1)}`,
      );
      console.log(`    ratio ${fmt(pt.ratio, 3)}  p99 ratio ${fmt(pt.p99Ratio, 2)}`);
    }
    const judged = points.filter((x) => x.concurrency >= 16);
    const ratio = Math.min(...judged.map((x) => x.ratio));
    return {
      id: 'A1',
      title: 'audit insert rate: PostgreSQL chain (group commit) vs file log, 1/16/64 appenders',
      target: 'reported, no target; no failed append',
      value: ratio,
      unit: 'x file sink records/s (worst of 16/64)',
      met: errors === 0,
      points,
      extra: { ...extra, errors },
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    await pgSink?.close().catch(() => undefined);
    await fileSink?.close().catch(() => undefined);
    await db.close();
    pg.remove();
  }
}

await mainIf(import.meta.url, runA1);
