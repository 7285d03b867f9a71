import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '@keygate/shared/log';
import type { NodeRecord } from '../../core/fleet/fleet.js';
import { startTestPostgres, type TestPostgres } from '../../testing/postgres.js';
import { PgDatabase } from './pg-database.js';
import { PgFleetStore } from './pg-fleet-store.js';
import { poolConfig, postgresSettingsSchema } from './pg-settings.js';

const logger = createLogger({ level: 'silent', name: 'test' });
let pg: TestPostgres;
const dbs: PgDatabase[] = [];

before(async () => {
  pg = await startTestPostgres({ fast: true });
});
after(async () => {
  await Promise.all(dbs.map((d) => d.close()));
  pg?.remove();
});

async function replica(): Promise<{ db: PgDatabase; store: PgFleetStore }> {
  const settings = postgresSettingsSchema.parse({
    host: pg.host,
    port: pg.port,
    database: pg.database,
    user: pg.user,
    passwordFile: pg.passwordFile,
    poolSize: 2,
  });
  const db = new PgDatabase({ pool: poolConfig(settings, 'test.yaml'), describe: 'test', logger });
  dbs.push(db);
  await db.open();
  return {
    db,
    store: new PgFleetStore(db, {
      usageRetentionMs: 100 * 365 * 86_400_000 /* fixed dates below never age out */,
    }),
  };
}

const node = (over: Partial<NodeRecord>): NodeRecord => ({
  cluster: 'c1',
  node: 'm1',
  instance: 'inst-a',
  crk: 'crk-1',
  shimVersion: '0.1.0',
  apis: ['v2', 'v1beta1'],
  cacheSize: 1,
  health: 'ok',
  lastSeen: '2026-12-06T00:00:00.000Z',
  replica: 'r1',
  ...over,
});

describe('PostgreSQL fleet store (real server)', () => {
  it('two replicas flush to one database: the newest report per node wins, use counts add up', async () => {
    const a = await replica();
    const b = await replica();
    a.store.noteNode(node({ keyVersion: 'v1', kmsKeyId: 'keygate/inst-a/crk-1/v1', replica: 'ra' }));
    b.store.noteNode(node({ keyVersion: 'v2', lastSeen: '2026-12-06T00:01:00.000Z', replica: 'rb' }));
    b.store.noteNode(node({ node: 'm2', lastSeen: '2026-12-06T00:00:30.000Z', replica: 'rb' }));
    const at = new Date('2026-12-06T00:00:10.000Z');
    const use = { cluster: 'c1', instance: 'inst-a', crk: 'crk-1', version: 'v1', op: 'unwrap' as const, at };
    for (let i = 0; i < 3; i++) a.store.noteUse(use);
    for (let i = 0; i < 4; i++) b.store.noteUse(use);
    b.store.noteUse({ ...use, op: 'wrap', version: 'v2' });
    await b.store.flush();
    await a.store.flush(); // older report of m1 after the newer one: it must not win
    const nodes = await a.store.nodes();
    assert.deepEqual(
      nodes.map((n) => [n.node, n.keyVersion, n.kmsKeyId, n.replica]),
      [
        ['m2', undefined, undefined, 'rb'],
        ['m1', 'v2', undefined, 'rb'],
      ],
    );
    assert.deepEqual(nodes[1]?.apis, ['v2', 'v1beta1']);
    const usage = await b.store.usage({ since: new Date('2026-12-05T00:00:00.000Z'), cluster: 'c1' });
    assert.deepEqual(
      usage.map((u) => [u.version, u.op, u.minute, u.count]),
      [
        ['v1', 'unwrap', '2026-12-06T00:00:00.000Z', 7],
        ['v2', 'wrap', '2026-12-06T00:00:00.000Z', 1],
      ],
    );
    assert.equal((await a.store.usage({ since: new Date(0), crk: 'other' })).length, 0);
    await a.store.forgetCluster('c1');
    assert.deepEqual(await b.store.nodes(), []);
  });

  it('keeps the buffer through a database outage and writes it once the database is back', async () => {
    const a = await replica();
    const at = new Date('2026-12-06T00:02:00.000Z');
    const use = { cluster: 'c9', instance: 'inst-a', crk: 'crk-1', version: 'v1', op: 'wrap' as const, at };
    a.store.noteUse(use);
    a.store.noteNode(node({ cluster: 'c9' }));
    pg.stop('fast');
    try {
      await assert.rejects(a.store.flush());
      a.store.noteUse(use); // noted during the outage: never throws
      assert.equal(a.store.buffered, 2);
    } finally {
      pg.start();
    }
    await a.store.flush();
    assert.equal(a.store.buffered, 0);
    const usage = await a.store.usage({ since: new Date(0), cluster: 'c9' });
    assert.deepEqual(
      usage.map((u) => u.count),
      [2],
    );
    assert.equal((await a.store.nodes()).filter((n) => n.cluster === 'c9').length, 1);
  });

  it('records rotations, newest first, and deletes use counts past retention at a flush', async () => {
    const { db } = await replica();
    const store = new PgFleetStore(db, { usageRetentionMs: 3_600_000, pruneEveryMs: 0 });
    const r = { instance: 'inst-r', crk: 'crk-r', startedBy: 'cli' };
    await store.startRotation({
      ...r,
      fromVersion: 'v1',
      toVersion: 'v2',
      startedAt: '2026-12-01T00:00:00.000Z',
    });
    await store.startRotation({
      ...r,
      fromVersion: 'v2',
      toVersion: 'v3',
      startedAt: '2026-12-02T00:00:00.000Z',
    });
    assert.deepEqual(
      (await store.rotations('inst-r', 'crk-r')).map((x) => x.toVersion),
      ['v3', 'v2'],
    );
    const use = { cluster: 'old', instance: 'inst-a', crk: 'crk-1', version: 'v1', op: 'wrap' as const };
    store.noteUse({ ...use, at: new Date(Date.now() - 2 * 3_600_000) });
    store.noteUse({ ...use, at: new Date() });
    await store.flush();
    const left = await store.usage({ since: new Date(0), cluster: 'old' });
    assert.equal(left.length, 1);
  });

  it('read only writes nothing; a full buffer drops new counts and says how many', async () => {
    const { db } = await replica();
    const ro = new PgFleetStore(db, { usageRetentionMs: 3_600_000, pruneEveryMs: 0, readOnly: true });
    ro.noteNode(node({ cluster: 'ro' }));
    await ro.close();
    assert.equal(pg.psql("SELECT count(*) FROM keygate_fleet_nodes WHERE cluster = 'ro'").trim(), '0');
    const small = new PgFleetStore(db, { usageRetentionMs: 3_600_000, maxBuffered: 2 });
    const use = { cluster: 'full', instance: 'i', crk: 'k', version: 'v1', op: 'wrap' as const };
    // Minutes inside the 1 h retention whenever the test runs (fixed dates would be pruned later).
    const minute = (m: number) => new Date(Math.floor(Date.now() / 60_000 - 10 + m) * 60_000);
    for (const m of [0, 1, 2, 3]) small.noteUse({ ...use, at: minute(m) });
    small.noteUse({ ...use, at: minute(1) }); // a held minute still counts
    assert.equal(small.dropped, 2);
    await small.flush();
    const counts = await small.usage({ since: new Date(0), cluster: 'full' });
    assert.deepEqual(
      counts.map((u) => u.count),
      [1, 2],
    );
  });
});
