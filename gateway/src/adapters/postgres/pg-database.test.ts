import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { isKeygateError } from '@keygate/shared/errors';
import { createLogger } from '@keygate/shared/log';
import type { StoreChange } from '../../core/store-changes.js';
import { startTestPostgres, type TestPostgres } from '../../testing/postgres.js';
import { MIGRATIONS } from './migrations.js';
import { PgDatabase, recordChange } from './pg-database.js';
import { poolConfig, postgresSettingsSchema } from './pg-settings.js';

const logger = createLogger({ level: 'silent', name: 'test' });
let pg: TestPostgres;

before(async () => {
  pg = await startTestPostgres({ fast: true });
});
after(() => pg?.remove());

function database(extra: Record<string, unknown> = {}): PgDatabase {
  const settings = postgresSettingsSchema.parse({
    host: pg.host,
    port: pg.port,
    database: pg.database,
    user: pg.user,
    passwordFile: pg.passwordFile,
    poolSize: 4,
    reconcileInterval: 200,
    ...extra,
  });
  return new PgDatabase({
    pool: poolConfig(settings, 'test.yaml'),
    describe: 'test',
    logger,
    reconcileMs: 200,
  });
}

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('PostgreSQL connection (real server)', () => {
  it('three replicas opening at once apply each migration exactly once', async () => {
    const dbs = [database(), database(), database()];
    await Promise.all(dbs.map((d) => d.open()));
    for (const d of dbs) assert.deepEqual(d.status(), { ready: true, reasons: [] });
    assert.deepEqual(
      await dbs[0]?.schemaVersions(),
      MIGRATIONS.map((m) => m.version),
    );
    assert.equal(pg.psql('SELECT count(*) FROM keygate_schema').trim(), String(MIGRATIONS.length));
    await Promise.all(dbs.map((d) => d.close()));
  });

  it('a change committed through one replica is heard by the others; a rolled-back one is not', async () => {
    const [a, b] = [database(), database()];
    await Promise.all([a.open(), b.open()]);
    const heard: StoreChange[] = [];
    b.onChange((c) => heard.push(c));
    await until('listener', () => b.listening);
    heard.length = 0;
    await a
      .tx(async (client) => {
        await recordChange(client, { kind: 'key', instance: 'i1', id: 'rolled-back' });
        throw new Error('abort');
      })
      .catch(() => undefined);
    await a.tx((client) => recordChange(client, { kind: 'key', instance: 'i1', id: 'k1' }));
    await until('notification', () => heard.length > 0);
    assert.deepEqual(heard, [{ kind: 'key', instance: 'i1', id: 'k1' }]);
    await Promise.all([a.close(), b.close()]);
  });

  it('the periodic re-read hears changes the notification channel missed', async () => {
    const a = database();
    await a.open();
    const heard: StoreChange[] = [];
    a.onChange((c) => heard.push(c));
    // Written straight into the table with the trigger's notification suppressed (as if lost).
    pg.psql(
      `BEGIN; ALTER TABLE keygate_changes DISABLE TRIGGER keygate_changes_notify; INSERT INTO keygate_changes (kind, subject) VALUES ('identity', '{"name":"svc"}'); ALTER TABLE keygate_changes ENABLE TRIGGER keygate_changes_notify; COMMIT;`,
    );
    await until('reconcile', () => heard.some((c) => c.kind === 'identity'));
    assert.deepEqual(
      heard.filter((c) => c.kind === 'identity'),
      [{ kind: 'identity', name: 'svc' }],
    );
    await a.close();
  });

  it('survives a database restart: STORE_UNAVAILABLE and not ready while down, ready again after', async () => {
    const a = database({ connectTimeout: 500 });
    await a.open();
    const heard: StoreChange[] = [];
    a.onChange((c) => heard.push(c));
    await a.ping();
    pg.stop('immediate');
    const err = await a.ping().then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(isKeygateError(err) && err.code === 'STORE_UNAVAILABLE', String(err));
    assert.equal(a.status().ready, false);
    assert.match(a.status().reasons.join(), /database test:/);
    heard.length = 0;
    pg.start();
    await until('ready again', () => a.status().ready, 10_000);
    await a.ping();
    // The listener reconnects and says that anything cached may be old.
    await until('resubscribed', () => heard.some((c) => c.kind === 'all'), 10_000);
    await a.close();
  });

  it('refuses a password in the URL and names the missing pieces', () => {
    const r = postgresSettingsSchema.safeParse({ url: 'postgres://u:hunter2xyz@h/db' });
    assert.equal(r.success, false);
    assert.doesNotMatch(JSON.stringify(r.error?.issues), /hunter2xyz/);
    assert.equal(postgresSettingsSchema.safeParse({ host: 'h' }).success, false);
    assert.equal(postgresSettingsSchema.safeParse({ url: 'postgres://u@h/db', host: 'h' }).success, false);
    assert.equal(
      postgresSettingsSchema.safeParse({ url: 'postgres://u@h/db?sslmode=disable' }).success,
      false,
    );
    assert.equal(postgresSettingsSchema.safeParse({ url: 'postgres://h/db' }).success, false);
    assert.deepEqual(
      (({ host, port, database, user }) => ({ host, port, database, user }))(
        poolConfig(
          postgresSettingsSchema.parse({ url: 'postgresql://kg%40x@db.example:6543/key%20gate' }),
          't',
        ),
      ),
      { host: 'db.example', port: 6543, database: 'key gate', user: 'kg@x' },
    );
  });
});
