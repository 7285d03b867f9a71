import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Clock } from '@keygate/shared';
import { isKeygateError } from '@keygate/shared/errors';
import { createLogger } from '@keygate/shared/log';
import type { AuditEvent } from '../../core/audit/audit-event.js';
import { startTestPostgres, type TestPostgres } from '../../testing/postgres.js';
import { PgDatabase } from '../postgres/pg-database.js';
import { poolConfig, postgresSettingsSchema } from '../postgres/pg-settings.js';
import { auditVerifyKey, KeyFileAuditSigner } from './key-file-signer.js';
import { exportPostgresAudit, verifyPostgresAudit } from './pg-audit-export.js';
import { PgAuditSink, type PgAuditSinkOptions } from './pg-audit-sink.js';
import { verifyAuditDir } from './verify-dir.js';

const logger = createLogger({ level: 'silent', name: 'test' });
const signer = KeyFileAuditSigner.fromPem(
  generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
);
const keys = [auditVerifyKey(signer.publicKeyPem())];

class FakeClock implements Clock {
  ms = Date.UTC(2026, 0, 1);
  now(): Date {
    return new Date(this.ms);
  }
}

function event(i: number, replica = 'a'): AuditEvent {
  return {
    time: new Date(Date.UTC(2026, 0, 1) + i).toISOString(),
    requestId: `req-${replica}-${i}`,
    certIdentity: 'spiffe://keygate/cluster/prod-eu-1',
    subject: 'prod-eu-1',
    instance: 'inst-a',
    keyId: 'crk-1',
    keyVersion: 'v1',
    operation: 'unwrap',
    outcome: 'success',
    latencyMs: 3,
    wrappedDekHash: '0123456789abcdef',
  };
}

const isUnavailable = (e: unknown) => isKeygateError(e) && e.code === 'AUDIT_UNAVAILABLE';

let pg: TestPostgres;
let root: string;
const open: PgDatabase[] = [];
let dbCount = 0;

before(async () => {
  pg = await startTestPostgres({ fast: true });
  root = await mkdtemp(join(tmpdir(), 'keygate-pg-audit-'));
});
after(async () => {
  await Promise.all(open.map((d) => d.close()));
  pg?.remove();
  await rm(root, { recursive: true, force: true });
});

/** A new, empty database on the test cluster (each test its own chain). */
function newDatabase(): string {
  const name = `audit_${++dbCount}`;
  pg.psql(`CREATE DATABASE ${name}`);
  return name;
}

/** A replica's connection to database `name` (migrated on open). */
async function connect(name: string): Promise<PgDatabase> {
  const settings = postgresSettingsSchema.parse({
    host: pg.host,
    port: pg.port,
    database: name,
    user: pg.user,
    passwordFile: pg.passwordFile,
    poolSize: 4,
    connectTimeout: 1000,
  });
  const db = new PgDatabase({ pool: poolConfig(settings, 'test.yaml'), describe: name, logger });
  open.push(db);
  await db.open();
  // The key the events use, active (the destroy guard refuses key uses of unknown keys).
  await db.query(
    "INSERT INTO keygate_keys (instance, id, name, state, creation_date, last_update_date) VALUES ('inst-a', 'crk-1', 'crk-1', 1, now(), now()) ON CONFLICT DO NOTHING",
  );
  return db;
}

describe('PostgreSQL audit sink (real server)', () => {
  const clock = new FakeClock();
  const opts = (database: PgDatabase, more: Partial<PgAuditSinkOptions> = {}): PgAuditSinkOptions => ({
    database,
    signer,
    clock,
    replica: 'replica-a',
    checkpointEvery: 25,
    ...more,
  });

  it('two replicas appending at once write ONE chain: contiguous seq, both start records, it verifies', async () => {
    const name = newDatabase();
    const [dbA, dbB] = [await connect(name), await connect(name)];
    const [a, b] = await Promise.all([
      PgAuditSink.open(opts(dbA, { replica: 'replica-a' })),
      PgAuditSink.open(opts(dbB, { replica: 'replica-b' })),
    ]);
    a.assertAvailable();
    b.assertAvailable();
    const run = async (sink: PgAuditSink, replica: string) => {
      let next = 0;
      const worker = async () => {
        while (next < 150) await sink.append(event(next++, replica));
      };
      await Promise.all(Array.from({ length: 8 }, worker));
    };
    await Promise.all([run(a, 'a'), run(b, 'b')]);
    await Promise.all([a.close(), b.close()]);

    const report = await verifyPostgresAudit(dbA, keys, { requireSealed: true });
    assert.equal(report.ok, true, JSON.stringify(report.problem));
    assert.equal(report.events, 300);
    assert.equal(report.starts, 2);
    assert.equal(report.lastBoot, 2);
    assert.ok(report.checkpoints >= 300 / 25, `checkpoints every 25 events: ${report.checkpoints}`);
    // Both replicas' events interleave in the one chain, seq 1..N without a gap.
    const rows = await dbA.query<{ n: string; min: string; max: string }>(
      'SELECT count(*)::text AS n, min(seq)::text AS min, max(seq)::text AS max FROM keygate_audit',
    );
    assert.deepEqual(rows.rows[0], { n: String(report.records), min: '1', max: String(report.lastSeq) });
    const starts = await dbA.query<{ line: string }>("SELECT line FROM keygate_audit WHERE type = 'start'");
    const names = starts.rows.map((r) => (JSON.parse(r.line) as { replica: string }).replica).sort();
    assert.deepEqual(names, ['replica-a', 'replica-b']);
    const byReplica = await dbA.query<{ replica: string; n: string }>(
      "SELECT replica, count(*)::text AS n FROM keygate_audit WHERE type = 'event' GROUP BY replica ORDER BY replica",
    );
    assert.deepEqual(byReplica.rows, [
      { replica: 'replica-a', n: '150' },
      { replica: 'replica-b', n: '150' },
    ]);
    const head = await dbA.query<{ seq: string; since: number }>(
      'SELECT seq::text AS seq, since_checkpoint AS since FROM keygate_audit_head',
    );
    assert.deepEqual(head.rows[0], { seq: String(report.lastSeq), since: 0 });
  });

  it('group commit: 200 appends at once take a handful of transactions, not 200 (counted by PostgreSQL)', async () => {
    const db = await connect(newDatabase());
    let slow = false;
    const sink = await PgAuditSink.open(
      opts(db, {
        checkpointEvery: 10_000,
        // While one transaction holds the head, the rest of the appends queue behind it.
        beforeCommit: () => (slow ? sleep(50) : undefined),
      }),
    );
    slow = true;
    const before = sink.stats.transactions;
    await Promise.all(Array.from({ length: 200 }, (_, i) => sink.append(event(i))));
    const used = sink.stats.transactions - before;
    assert.ok(used >= 1 && used <= 3, `200 appends in ${used} transactions`);
    // Rows inserted by one transaction share its xmin: PostgreSQL's own count of the commits.
    const tx = await db.query<{ n: string; events: string }>(
      "SELECT count(DISTINCT xmin::text)::text AS n, count(*)::text AS events FROM keygate_audit WHERE type = 'event'",
    );
    assert.deepEqual(tx.rows[0], { n: String(used), events: '200' });
    await sink.close();
    assert.equal((await verifyPostgresAudit(db, keys)).ok, true);
  });

  it('PostgreSQL stopped: append rejects and assertAvailable throws AUDIT_UNAVAILABLE; after restart it recovers', async () => {
    const name = newDatabase();
    const db = await connect(name);
    const errors: string[] = [];
    const sink = await PgAuditSink.open(opts(db, { onError: (e) => errors.push(e.code) }));
    await sink.append(event(1));
    pg.stop('fast');
    try {
      await assert.rejects(sink.append(event(2)), isUnavailable);
      assert.throws(() => sink.assertAvailable(), isUnavailable);
      await sink.probe();
      assert.throws(() => sink.assertAvailable(), isUnavailable, 'still down: still unavailable');
      assert.equal(sink.stats.available, false);
    } finally {
      pg.start();
    }
    assert.ok(errors.length >= 2 && errors.every((c) => c === 'AUDIT_UNAVAILABLE'));
    await sink.probe();
    sink.assertAvailable();
    await sink.append(event(3));
    await sink.close();
    const report = await verifyPostgresAudit(db, keys, { requireSealed: true });
    assert.equal(report.ok, true, JSON.stringify(report.problem));
    // The rejected record is not in the chain; the ones acknowledged are.
    const ids = (
      await db.query<{ line: string }>("SELECT line FROM keygate_audit WHERE type = 'event' ORDER BY seq")
    ).rows.map((r) => (JSON.parse(r.line) as { requestId: string }).requestId);
    assert.deepEqual(ids, ['req-a-1', 'req-a-3']);
  });

  it('a sink opened while the database is down starts unavailable, then writes its start record first', async () => {
    const name = newDatabase();
    const db = await connect(name);
    pg.stop('fast');
    let sink: PgAuditSink;
    try {
      sink = await PgAuditSink.open(opts(db, { replica: 'late' }));
      assert.throws(() => sink.assertAvailable(), isUnavailable);
    } finally {
      pg.start();
    }
    await sink.append(event(1));
    await sink.close();
    const types = (await db.query<{ type: string }>('SELECT type FROM keygate_audit ORDER BY seq')).rows.map(
      (r) => r.type,
    );
    assert.deepEqual(types, ['start', 'event', 'checkpoint']);
    assert.equal((await verifyPostgresAudit(db, keys, { requireSealed: true })).ok, true);
  });

  it('a checkpoint is signed once the interval passed with unsigned events', async () => {
    const db = await connect(newDatabase());
    const sink = await PgAuditSink.open(opts(db, { checkpointEvery: 1000, checkpointIntervalMs: 1000 }));
    await sink.append(event(1));
    await sink.append(event(2));
    clock.ms += 1500;
    const end = Date.now() + 5000;
    let reasons: string[] = [];
    while (Date.now() < end) {
      reasons = (
        await db.query<{ line: string }>("SELECT line FROM keygate_audit WHERE type = 'checkpoint'")
      ).rows.map((r) => (JSON.parse(r.line) as { reason: string; count: number }).reason);
      if (reasons.length > 0) break;
      await sleep(50);
    }
    assert.deepEqual(reasons, ['interval']);
    await sink.close();
    const r = await verifyPostgresAudit(db, keys, { requireSealed: true });
    assert.equal(r.ok, true);
    assert.equal(r.checkpoints, 2);
  });

  it('export writes audit files that the file verifier accepts, byte for byte the chain', async () => {
    const db = await connect(newDatabase());
    const sink = await PgAuditSink.open(opts(db));
    for (let i = 0; i < 120; i++) await sink.append(event(i));
    await sink.close();
    const dir = join(root, 'export');
    const out = await exportPostgresAudit(db, dir, { recordsPerFile: 50 });
    const pgReport = await verifyPostgresAudit(db, keys, { requireSealed: true });
    assert.equal(pgReport.ok, true);
    assert.equal(out.records, pgReport.records);
    assert.equal(out.files.length, Math.ceil(pgReport.records / 50));
    const fileReport = await verifyAuditDir(dir, keys, { requireSealed: true });
    assert.equal(fileReport.ok, true, JSON.stringify(fileReport.problem));
    assert.equal(fileReport.records, pgReport.records);
    assert.equal(fileReport.events, 120);
    assert.equal(fileReport.lastHash, pgReport.lastHash);
    // An export refuses a folder that already holds audit files.
    await assert.rejects(exportPostgresAudit(db, dir), /already holds audit files/);
    // From a seq on: verifies as a pruned log.
    const part = join(root, 'export-part');
    const tail = await exportPostgresAudit(db, part, { from: 60 });
    assert.equal(tail.firstSeq, 60);
    assert.equal((await readdir(part)).length, 1);
    assert.equal((await verifyAuditDir(part, keys)).ok, false, 'not from seq 1: needs --pruned');
    const pruned = await verifyAuditDir(part, keys, { allowPrunedStart: true });
    assert.equal(pruned.ok, true, JSON.stringify(pruned.problem));
    assert.equal(pruned.lastSeq, pgReport.lastSeq);
    const first = (await readFile(join(part, tail.files[0] ?? ''), 'utf8')).split('\n')[0] ?? '';
    assert.equal((JSON.parse(first) as { seq: number }).seq, 60);
  });

  it('tampering with psql: UPDATE, DELETE, TRUNCATE refused; edits made around the trigger are found by verify', async () => {
    // The cluster's own database: the one pg.psql() talks to.
    const db = await connect(pg.database);
    const sink = await PgAuditSink.open(opts(db));
    for (let i = 0; i < 30; i++) await sink.append(event(i));
    await sink.close();
    assert.equal((await verifyPostgresAudit(db, keys)).ok, true);
    assert.throws(
      () => pg.psql("UPDATE keygate_audit SET line = replace(line, 'unwrap', 'wrap') WHERE seq = 5"),
      /append-only/,
    );
    assert.throws(() => pg.psql('DELETE FROM keygate_audit WHERE seq = 5'), /append-only/);
    assert.throws(() => pg.psql('TRUNCATE keygate_audit'), /append-only/);

    // The table owner can switch the trigger off: the chain still tells.
    pg.psql('ALTER TABLE keygate_audit DISABLE TRIGGER USER');
    pg.psql('UPDATE keygate_audit SET line = replace(line, \'"unwrap"\', \'"wrap"\') WHERE seq = 5');
    let r = await verifyPostgresAudit(db, keys);
    assert.equal(r.ok, false);
    assert.equal(r.problem?.kind, 'edited');
    assert.match(r.problem?.message ?? '', /row seq 5/);
    assert.equal(r.lastSeq, 4);

    // The hash column fixed up too: the next record's prev no longer matches.
    pg.psql("UPDATE keygate_audit SET hash = encode(sha256(convert_to(line, 'UTF8')), 'hex') WHERE seq = 5");
    r = await verifyPostgresAudit(db, keys);
    assert.equal(r.problem?.kind, 'edited');
    assert.match(r.problem?.message ?? '', /record seq 5 was changed/);
    assert.equal(r.problem?.line, 5);
  });

  it('rows cut off the end are found against the head row', async () => {
    const db = await connect(newDatabase());
    const sink = await PgAuditSink.open(opts(db));
    for (let i = 0; i < 10; i++) await sink.append(event(i));
    await sink.close();
    await db.query('ALTER TABLE keygate_audit DISABLE TRIGGER USER');
    await db.query('DELETE FROM keygate_audit WHERE seq > 8');
    const r = await verifyPostgresAudit(db, keys);
    assert.equal(r.ok, false);
    assert.equal(r.problem?.kind, 'cut-back');
    await db.query('DELETE FROM keygate_audit');
    assert.equal((await verifyPostgresAudit(db, keys)).problem?.kind, 'empty');
  });

  it('the destroy guard: a key use whose key was destroyed or disabled before its record committed is refused, and recorded so', async () => {
    const db = await connect(newDatabase());
    const sink = await PgAuditSink.open(opts(db));
    await sink.append(event(1));
    await db.query("UPDATE keygate_keys SET state = 2 WHERE id = 'crk-1'");
    await assert.rejects(
      sink.append(event(2)),
      (e: unknown) => isKeygateError(e) && e.code === 'KEY_ACTION_INVALID_STATE_ERR',
    );
    // Not a key use: a key.get of the suspended key is recorded as it happened.
    await sink.append({ ...event(3), operation: 'key.get' });
    await db.query("UPDATE keygate_keys SET state = 5 WHERE id = 'crk-1'");
    await assert.rejects(
      sink.append(event(4)),
      (e: unknown) => isKeygateError(e) && e.code === 'KEY_DELETED_ERR',
    );
    await assert.rejects(
      sink.append({ ...event(5), keyId: 'crk-never' }),
      (e: unknown) => isKeygateError(e) && e.code === 'KEY_NOT_FOUND_ERR',
    );
    assert.doesNotThrow(() => sink.assertAvailable(), 'a refused key use is not an audit failure');
    await sink.close();
    const rows = await db.query<{ line: string }>(
      "SELECT line FROM keygate_audit WHERE type = 'event' ORDER BY seq",
    );
    assert.deepEqual(
      rows.rows.map((r) => {
        const e = JSON.parse(r.line) as { requestId: string; outcome: string; errorCode?: string };
        return `${e.requestId} ${e.outcome} ${e.errorCode ?? ''}`.trim();
      }),
      [
        'req-a-1 success',
        'req-a-2 failure KEY_ACTION_INVALID_STATE_ERR',
        'req-a-3 success',
        'req-a-4 failure KEY_DELETED_ERR',
        'req-a-5 failure KEY_NOT_FOUND_ERR',
      ],
    );
    const r = await verifyPostgresAudit(db, keys, { requireSealed: true });
    assert.equal(r.ok, true, JSON.stringify(r.problem));
  });

  it('the destroy guard serializes with a destroy in flight: the key use waits for its commit and is refused', async () => {
    const db = await connect(newDatabase());
    const sink = await PgAuditSink.open(opts(db));
    let appended: Promise<void> | undefined;
    await db.tx(async (client) => {
      // A destroy holds the key's row lock (as PostgresKeyStore.update does) while a wrap's record comes in.
      await client.query("SELECT state FROM keygate_keys WHERE id = 'crk-1' FOR UPDATE");
      appended = sink.append({ ...event(1), operation: 'wrap' });
      appended.catch(() => undefined);
      await sleep(300);
      await client.query("UPDATE keygate_keys SET state = 5 WHERE id = 'crk-1'");
    });
    await assert.rejects(
      appended as Promise<void>,
      (e: unknown) => isKeygateError(e) && e.code === 'KEY_DELETED_ERR',
    );
    await sink.close();
  });

  it('closed: append rejects and assertAvailable throws AUDIT_UNAVAILABLE', async () => {
    const db = await connect(newDatabase());
    const sink = await PgAuditSink.open(opts(db));
    await sink.close();
    assert.throws(() => sink.assertAvailable(), isUnavailable);
    await assert.rejects(sink.append(event(1)), isUnavailable);
  });
});
