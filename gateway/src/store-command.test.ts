import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  createGatewayFixture,
  type GatewayFixture,
  INSTANCE,
  postgresStoreYaml,
} from './testing/gateway-fixture.js';
import { startTestPostgres, type TestPostgres } from './testing/postgres.js';

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));
const exec = promisify(execFile);

/** `keygate-gateway db migrate|status` and `store migrate-from-file`, as real processes on a real PostgreSQL. */
describe('keygate-gateway db and store commands', () => {
  let fx: GatewayFixture;
  let pg: TestPostgres;
  let fileConfig: string;
  let pgConfig: string;
  let manualConfig: string;

  const run = async (...args: string[]) => {
    try {
      const r = await exec(process.execPath, [CLI, ...args], { env: { ...process.env, ...fx.softhsm.env } });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string };
      return { code: x.code, stdout: x.stdout, stderr: x.stderr };
    }
  };

  before(async () => {
    fx = await createGatewayFixture();
    pg = await startTestPostgres({ fast: true });
    fileConfig = fx.writeConfig('file-store');
    pgConfig = fx.writeConfig('pg-store', { store: postgresStoreYaml(pg) });
    manualConfig = fx.writeConfig('pg-manual', { store: postgresStoreYaml(pg, ['migrate: manual']) });
  });
  after(async () => {
    await pg?.remove();
    fx?.softhsm.cleanup();
  });

  it('db status shows pending migrations without applying them; db migrate applies them once', async () => {
    const before = await run('db', 'status', '--config', manualConfig);
    assert.equal(before.code, 1, before.stdout + before.stderr);
    assert.match(before.stderr, /needs migrations .*db migrate/);
    const migrate = await run('db', 'migrate', '--config', manualConfig);
    assert.equal(migrate.code, 0, migrate.stderr);
    assert.doesNotMatch(migrate.stdout, /pending/);
    assert.match(migrate.stdout, /schema is current/);
    const again = await run('db', 'status', '--config', manualConfig);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /applied {2}1 {2}change feed/);
  });

  it('store migrate-from-file copies every key of a file store with its versions; a re-run copies nothing', async () => {
    const made: string[] = [];
    for (const name of ['alpha', 'beta']) {
      const r = await run('keys', 'create', '--config', fileConfig, '--instance', INSTANCE, '--name', name);
      assert.equal(r.code, 0, r.stderr);
      made.push(String(JSON.parse(r.stdout).id));
    }
    const rot = await run(
      'keys',
      'rotate',
      '--config',
      fileConfig,
      '--instance',
      INSTANCE,
      '--id',
      String(made[0]),
    );
    assert.equal(rot.code, 0, rot.stderr);
    const dry = await run(
      'store',
      'migrate-from-file',
      '--config',
      pgConfig,
      '--from',
      fileConfig,
      '--dry-run',
    );
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /would copy 2 key/);
    const copy = await run('store', 'migrate-from-file', '--config', pgConfig, '--from', fileConfig);
    assert.equal(copy.code, 0, copy.stderr);
    assert.match(copy.stdout, /copied 2 key\(s\).*0 already present; 0 conflict/);
    const again = await run('store', 'migrate-from-file', '--config', pgConfig, '--from', fileConfig);
    assert.match(again.stdout, /copied 0 key\(s\).*2 already present; 0 conflict/);
    // The PostgreSQL gateway sees the keys with their versions, and the same HSM objects round-trip.
    const fromFile = await run(
      'keys',
      'get',
      '--config',
      fileConfig,
      '--instance',
      INSTANCE,
      '--id',
      String(made[0]),
    );
    const fromPg = await run(
      'keys',
      'get',
      '--config',
      pgConfig,
      '--instance',
      INSTANCE,
      '--id',
      String(made[0]),
    );
    assert.equal(fromPg.code, 0, fromPg.stderr);
    assert.deepEqual(JSON.parse(fromPg.stdout), JSON.parse(fromFile.stdout));
    const check = await run('hsm', 'check', '--config', pgConfig);
    assert.equal(check.code, 0, check.stderr);
  });

  it('a key that differs in the database is a conflict: reported, left alone, exit 1', async () => {
    await pg.psql(`UPDATE keygate_keys SET description = 'changed in the database' WHERE name = 'beta'`);
    const r = await run('store', 'migrate-from-file', '--config', pgConfig, '--from', fileConfig);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /conflict: .*\(beta\) differs/);
    assert.match(r.stdout, /1 already present; 1 conflict/);
  });

  it('db commands on a file-store config say what they need', async () => {
    const r = await run('db', 'migrate', '--config', fileConfig);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /store\.postgres/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  });
});
