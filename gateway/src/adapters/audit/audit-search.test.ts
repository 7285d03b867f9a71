import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Clock } from '@keygate/shared';
import { createLogger } from '@keygate/shared/log';
import type { AuditEvent } from '../../core/audit/audit-event.js';
import type { AuditReader } from '../../core/audit/audit-search.js';
import { startTestPostgres, type TestPostgres } from '../../testing/postgres.js';
import { PgDatabase } from '../postgres/pg-database.js';
import { poolConfig, postgresSettingsSchema } from '../postgres/pg-settings.js';
import { FileAuditAnchorStore } from './anchor-file.js';
import { FileAuditReader, PgAuditReader } from './audit-search.js';
import { FileAuditSink } from './file-sink.js';
import { auditVerifyKey, KeyFileAuditSigner } from './key-file-signer.js';
import { PgAuditSink } from './pg-audit-sink.js';

const signer = KeyFileAuditSigner.fromPem(
  generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
);
const keys = [auditVerifyKey(signer.publicKeyPem())];
const T0 = Date.UTC(2026, 2, 1, 10);

class FakeClock implements Clock {
  ms = T0;
  now(): Date {
    return new Date(this.ms);
  }
}

/** 30 events a minute apart: wraps by cluster-a, a rotation and destroys by the console, a denied one. */
function events(): AuditEvent[] {
  return Array.from({ length: 30 }, (_, i) => {
    const base = {
      time: new Date(T0 + i * 60_000).toISOString(),
      requestId: `req-${i}`,
      instance: 'inst-a',
      keyId: i % 2 === 0 ? 'crk-1' : 'crk-2',
      latencyMs: 1,
    };
    if (i === 10) return { ...base, subject: 'console:ops', operation: 'key.rotate', outcome: 'success' };
    if (i === 20) return { ...base, subject: 'console:ops', operation: 'key.disable', outcome: 'success' };
    if (i === 25)
      return {
        ...base,
        subject: 'intruder',
        operation: 'unwrap',
        outcome: 'denied',
        errorCode: 'FORBIDDEN_ERR',
      };
    return {
      ...base,
      subject: 'cluster-a',
      certIdentity: 'spiffe://c/a',
      operation: 'wrap',
      outcome: 'success',
    };
  });
}

/** The same searches on either reader. */
async function searches(reader: AuditReader): Promise<void> {
  const all = await reader.search({ page: 0, pageSize: 100 });
  assert.equal(all.hits.length, 30);
  assert.equal(all.more, false);
  assert.deepEqual(
    all.hits.slice(0, 3).map((h) => h.event.requestId),
    ['req-29', 'req-28', 'req-27'],
    'newest first',
  );
  const byConsole = await reader.search({ identity: 'ops', page: 0, pageSize: 10 });
  assert.deepEqual(
    byConsole.hits.map((h) => h.event.operation),
    ['key.disable', 'key.rotate'],
  );
  const keyOps = await reader.search({ operation: 'key.', keyId: 'crk-1', page: 0, pageSize: 10 });
  assert.deepEqual(
    keyOps.hits.map((h) => h.event.requestId),
    ['req-20', 'req-10'],
  );
  const denied = await reader.search({ outcome: 'denied', page: 0, pageSize: 10 });
  assert.deepEqual(
    denied.hits.map((h) => h.event.errorCode),
    ['FORBIDDEN_ERR'],
  );
  const byCert = await reader.search({ identity: 'spiffe://c/a', page: 0, pageSize: 100 });
  assert.equal(byCert.hits.length, 27);
  const window = await reader.search({
    from: new Date(T0 + 5 * 60_000),
    to: new Date(T0 + 9 * 60_000),
    page: 0,
    pageSize: 2,
  });
  assert.deepEqual(
    window.hits.map((h) => h.event.requestId),
    ['req-9', 'req-8'],
  );
  assert.equal(window.more, true);
  const page2 = await reader.search({
    from: new Date(T0 + 5 * 60_000),
    to: new Date(T0 + 9 * 60_000),
    page: 2,
    pageSize: 2,
  });
  assert.deepEqual(
    page2.hits.map((h) => h.event.requestId),
    ['req-5'],
  );
  assert.equal(page2.more, false);
}

describe('audit search and verification (file log)', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'keygate-audit-search-'));
  });
  after(async () => rm(root, { recursive: true, force: true }));

  it('searches a real file log newest first (time, identity, key, operation, outcome, pages) and verifies its chain', async () => {
    const dir = join(root, 'log');
    const clock = new FakeClock();
    const sink = await FileAuditSink.open({
      dir,
      signer,
      clock,
      anchors: new FileAuditAnchorStore(join(root, 'log.anchor.json')),
      checkpointEvery: 7,
      maxFileBytes: 64 * 1024,
    });
    for (const e of events()) await sink.append(e);
    const reader = new FileAuditReader(dir, keys, () => clock.now());
    await searches(reader);
    const live = await reader.verify();
    assert.equal(live.ok, true, live.problem);
    await sink.close();
    const sealed = await reader.verify();
    assert.equal(sealed.ok, true);
    assert.ok(sealed.lastSeq > live.lastSeq, 'the close checkpoint was added');
    // An edited record: the chain is reported broken, with where.
    const [file] = (await readdir(dir)).filter((f) => f.endsWith('.jsonl'));
    assert.ok(file);
    const path = join(dir, file);
    await writeFile(path, (await readFile(path, 'utf8')).replace('"req-3"', '"req-X"'));
    const broken = await reader.verify();
    assert.equal(broken.ok, false);
    assert.match(broken.problem ?? '', /^edited at audit-/);
  });

  it('an absent folder searches empty and verifies as empty', async () => {
    const reader = new FileAuditReader(join(root, 'none'), keys);
    assert.deepEqual((await reader.search({ page: 0, pageSize: 10 })).hits, []);
    const v = await reader.verify();
    assert.equal(v.ok, false);
    assert.match(v.problem ?? '', /^empty/);
  });
});

describe('audit search and verification (PostgreSQL chain, real server)', () => {
  let pg: TestPostgres;
  let db: PgDatabase;
  before(async () => {
    pg = await startTestPostgres({ fast: true });
    const settings = postgresSettingsSchema.parse({
      host: pg.host,
      port: pg.port,
      database: 'postgres',
      user: pg.user,
      passwordFile: pg.passwordFile,
      poolSize: 2,
      connectTimeout: 1000,
    });
    db = new PgDatabase({
      pool: poolConfig(settings, 'test.yaml'),
      describe: 'audit-search',
      logger: createLogger({ level: 'silent', name: 'test' }),
    });
    await db.open();
    for (const id of ['crk-1', 'crk-2']) {
      await db.query(
        "INSERT INTO keygate_keys (instance, id, name, state, creation_date, last_update_date) VALUES ('inst-a', $1, $1, 1, now(), now())",
        [id],
      );
    }
  });
  after(async () => {
    await db?.close();
    pg?.remove();
  });

  it('searches the chain newest first with the same filters, and verifies it', async () => {
    const clock = new FakeClock();
    const sink = await PgAuditSink.open({ database: db, signer, clock, replica: 'r1', checkpointEvery: 7 });
    for (const e of events()) await sink.append(e);
    const reader = new PgAuditReader(db, keys, () => clock.now());
    await searches(reader);
    const v = await reader.verify();
    assert.equal(v.ok, true, v.problem);
    assert.ok(v.records > 30);
    await sink.close();
  });
});
