import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyState } from '@keygate/shared/api';
import { isKeygateError } from '@keygate/shared/errors';
import { createLogger } from '@keygate/shared/log';
import { keyRecord, keyStoreContract } from '../testing/key-store-contract.js';
import { startTestPostgres, type TestPostgres } from '../testing/postgres.js';
import { PgDatabase } from './postgres/pg-database.js';
import { PostgresKeyStore } from './postgres/pg-key-store.js';
import { poolConfig, postgresSettingsSchema } from './postgres/pg-settings.js';
import { JsonFileKeyStore } from './store/json-file-store.js';

const logger = createLogger({ level: 'silent', name: 'test' });
const dir = mkdtempSync(join(tmpdir(), 'keygate-stores-'));
let pg: TestPostgres;
let files = 0;

before(async () => {
  pg = await startTestPostgres({ fast: true });
});
after(async () => {
  await pg?.remove();
  rmSync(dir, { recursive: true, force: true });
});

function database(): PgDatabase {
  const settings = postgresSettingsSchema.parse({
    url: `postgresql://${pg.user}@${pg.host}:${pg.port}/${pg.database}`,
    passwordFile: pg.passwordFile,
    poolSize: 4,
    reconcileInterval: 500,
  });
  return new PgDatabase({
    pool: poolConfig(settings, 'test.yaml'),
    describe: 'test',
    logger,
    reconcileMs: 500,
  });
}

async function pgPair() {
  const dbs = [database(), database()] as const;
  const [a, b] = dbs.map((db) => new PostgresKeyStore(db));
  await Promise.all([a?.open(), b?.open()]);
  await untilListening(...dbs);
  return {
    a: a as PostgresKeyStore,
    b: b as PostgresKeyStore,
    dbs,
    async close() {
      await Promise.all([a?.close(), b?.close()]);
      await Promise.all(dbs.map((d) => d.close()));
    },
  };
}

async function untilListening(...dbs: readonly PgDatabase[]): Promise<void> {
  const end = Date.now() + 10_000;
  while (!dbs.every((d) => d.listening)) {
    if (Date.now() > end) throw new Error('change feed never started listening');
    await sleep(20);
  }
}

describe('key store contract: JSON file', () => {
  keyStoreContract(async () => {
    const file = join(dir, `store-${++files}.json`);
    const [a, b] = [1, 2].map(() => new JsonFileKeyStore(file, { createIfMissing: true }));
    await a?.open();
    await b?.open();
    return { a: a as JsonFileKeyStore, b: b as JsonFileKeyStore, close: async () => undefined };
  });
});

describe('key store contract: PostgreSQL', () => {
  keyStoreContract(pgPair);
});

describe('PostgreSQL key store', () => {
  it('serves reads from its cache while the change feed listens, and drops an entry when any replica changes it', async () => {
    const p = await pgPair();
    try {
      const k = keyRecord('cache');
      await p.a.create(k);
      // b reads the key until it keeps it (a read that overlaps the create's notification is not kept).
      const cachedBy = Date.now() + 5000;
      while (!p.b.isCached('cache', k.id)) {
        assert.ok(Date.now() < cachedBy, 'b never cached the key');
        assert.equal((await p.b.get('cache', k.id))?.state, KeyState.ACTIVE);
        await sleep(10);
      }
      // A write behind every replica's back (no change row): the cached record is what b answers.
      await pg.psql(`UPDATE keygate_keys SET description = 'behind the back' WHERE id = '${k.id}'`);
      assert.equal((await p.b.get('cache', k.id))?.description, k.description);
      assert.equal((await p.b.get('cache', k.id, { fresh: true }))?.description, 'behind the back');
      await p.a.update('cache', k.id, (cur) => ({ ...cur, state: KeyState.SUSPENDED }));
      const end = Date.now() + 5000;
      while ((await p.b.get('cache', k.id))?.state !== KeyState.SUSPENDED) {
        assert.ok(Date.now() < end, 'b never heard the change');
        await sleep(10);
      }
    } finally {
      await p.close();
    }
  });

  it('answers STORE_UNAVAILABLE while the database is down, does not serve its cache then, and recovers after a restart', async () => {
    const p = await pgPair();
    try {
      const k = keyRecord('restart');
      await p.a.create(k);
      assert.equal((await p.b.get('restart', k.id))?.state, KeyState.ACTIVE);
      await pg.stop('fast');
      const end = Date.now() + 10_000;
      while (p.dbs[1].listening) {
        assert.ok(Date.now() < end, 'the change feed did not notice the database going away');
        await sleep(20);
      }
      await assert.rejects(
        p.b.get('restart', k.id),
        (e: unknown) => isKeygateError(e) && e.code === 'STORE_UNAVAILABLE',
      );
      await assert.rejects(
        p.a.update('restart', k.id, (cur) => cur),
        (e: unknown) => isKeygateError(e) && e.code === 'STORE_UNAVAILABLE',
      );
      assert.equal(p.b.status().ready, false);
      await pg.start();
      await untilListening(...p.dbs);
      await p.a.update('restart', k.id, (cur) => ({ ...cur, state: KeyState.SUSPENDED }));
      assert.equal((await p.b.get('restart', k.id, { fresh: true }))?.state, KeyState.SUSPENDED);
      assert.equal(p.b.status().ready, true);
    } finally {
      await p.close();
    }
  });
});
