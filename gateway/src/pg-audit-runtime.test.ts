import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { describeConfigError } from '@keygate/shared/config';
import { isKeygateError } from '@keygate/shared/errors';
import { createLogger } from '@keygate/shared/log';
import { createAuditKeyFile } from './adapters/audit/key-file-signer.js';
import { PgDatabase } from './adapters/postgres/pg-database.js';
import { describeDatabase, poolConfig } from './adapters/postgres/pg-settings.js';
import { buildAuditSink } from './audit-runtime.js';
import { loadGatewayConfig, postgresStore } from './config.js';
import type { AuditEvent } from './core/audit/audit-event.js';
import { startTestPostgres, type TestPostgres } from './testing/postgres.js';
import { CLI } from './testing/token-mode.js';

const run = promisify(execFile);
const logger = createLogger({ level: 'silent', name: 'test' });

const BASE = `server:
  tls: { certFile: s.pem, keyFile: k.pem, clientCaFile: ca.pem }
hsm: { backend: software, keyFile: soft.json, masterKeyFile: m.key }
`;

function event(i: number): AuditEvent {
  return {
    time: new Date(Date.UTC(2026, 0, 1) + i).toISOString(),
    requestId: `req-${i}`,
    subject: 'prod-eu-1',
    instance: 'inst-a',
    keyId: 'crk-1',
    operation: 'wrap',
    outcome: 'success',
    latencyMs: 2,
  };
}

/** Runs the CLI; resolves with its exit code and output either way. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args]);
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe('audit.target: postgres (config, buildAuditSink, audit verify --postgres, audit export)', () => {
  let pg: TestPostgres;
  let dir: string;
  let keyFile: string;
  let pubFile: string;
  let storeYaml: string;

  before(async () => {
    pg = await startTestPostgres({ fast: true });
    dir = mkdtempSync(join(tmpdir(), 'keygate-pg-audit-cfg-'));
    keyFile = join(dir, 'audit.pem');
    const { publicKeyPem } = await createAuditKeyFile(keyFile);
    pubFile = join(dir, 'audit.pub.pem');
    writeFileSync(pubFile, publicKeyPem);
    storeYaml = `store:\n  postgres: { host: 127.0.0.1, port: ${pg.port}, database: ${pg.database}, user: ${pg.user}, passwordFile: ${pg.passwordFile} }\n`;
  });
  after(() => {
    pg?.remove();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const write = (name: string, text: string) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, text);
    return file;
  };
  const problems = (name: string, text: string): string => {
    try {
      loadGatewayConfig(write(name, text));
    } catch (err) {
      assert.ok(isKeygateError(err) && err.code === 'CONFIG_INVALID');
      return describeConfigError(err);
    }
    assert.fail('config accepted');
  };

  it('config: target postgres needs store.postgres; file settings are refused with it; file is the default', () => {
    const c = loadGatewayConfig(
      write(
        'pg',
        `${BASE}${storeYaml}audit: { target: postgres, signingKeyFile: ${keyFile}, replica: gw-0 }\n`,
      ),
    );
    assert.deepEqual(
      { ...c.audit },
      {
        target: 'postgres',
        signingKeyFile: keyFile,
        replica: 'gw-0',
        checkpointEvery: 1000,
        checkpointInterval: 60_000,
      },
    );
    assert.match(
      problems(
        'pg-on-file',
        `${BASE}store: { file: k.json }\naudit: { target: postgres, signingKeyFile: a.pem }\n`,
      ),
      /audit\.target.*store\.postgres/,
    );
    assert.match(
      problems('pg-dir', `${BASE}${storeYaml}audit: { target: postgres, signingKeyFile: a.pem, dir: /x }\n`),
      /audit\.dir/,
    );
    assert.match(
      problems('bad-target', `${BASE}${storeYaml}audit: { target: s3, signingKeyFile: a.pem }\n`),
      /audit/,
    );
    const f = loadGatewayConfig(
      write('file', `${BASE}${storeYaml}audit: { dir: /var/a, signingKeyFile: a.pem }\n`),
    );
    assert.equal(f.audit?.target, 'file');
  });

  it('buildAuditSink writes the chain in the database; the CLI verifies it, exports it, and finds a tampered row', async () => {
    const configFile = write(
      'serve',
      `${BASE}${storeYaml}audit: { target: postgres, signingKeyFile: ${keyFile}, replica: gw-0, checkpointEvery: 5 }\n`,
    );
    const config = loadGatewayConfig(configFile);
    const s = postgresStore(config);
    assert.ok(s);
    const database = new PgDatabase({
      pool: poolConfig(s, configFile),
      describe: describeDatabase(s),
      logger,
    });
    await database.open();
    // The wrapping key, active in the key store (the destroy guard checks it in the audit transaction).
    await database.query(
      "INSERT INTO keygate_keys (instance, id, name, state, creation_date, last_update_date) VALUES ('inst-a', 'crk-1', 'crk-1', 1, now(), now())",
    );
    try {
      const sink = await buildAuditSink(config, configFile, logger, process.stdout, undefined, database);
      sink.assertAvailable();
      await Promise.all(Array.from({ length: 12 }, (_, i) => sink.append(event(i))));
      await sink.close();
      // Without the key runtime's database, the postgres target cannot be built.
      await assert.rejects(
        buildAuditSink(config, configFile, logger),
        (e) => isKeygateError(e) && e.code === 'CONFIG_INVALID',
      );
    } finally {
      await database.close();
    }

    const ok = await cli([
      'audit',
      'verify',
      '--postgres',
      '--config',
      configFile,
      '--key',
      pubFile,
      '--sealed',
    ]);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(
      ok.stdout,
      /^OK: 1 files, \d+ records \(12 events, \d+ checkpoints, 1 starts\), last seq \d+, sealed/,
    );
    const head = /head: seq (\d+) hash ([0-9a-f]{64}) boot 1/.exec(ok.stdout);
    assert.ok(head, ok.stdout);

    const out = join(dir, 'export');
    const ex = await cli(['audit', 'export', '--config', configFile, '--out', out]);
    assert.equal(ex.code, 0, ex.stderr);
    assert.match(ex.stdout, new RegExp(`exported ${head[1]} records \\(seq 1\\.\\.${head[1]}\\)`));
    const again = await cli(['audit', 'export', '--config', configFile, '--out', out]);
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already holds audit files/);
    const fileVerify = await cli(['audit', 'verify', out, '--key', pubFile, '--sealed']);
    assert.equal(fileVerify.code, 0, fileVerify.stdout);
    // The same head as the database's: the export is the chain byte for byte.
    assert.ok(fileVerify.stdout.includes(`head: seq ${head[1]} hash ${head[2]} boot 1`), fileVerify.stdout);

    const part = join(dir, 'export-part');
    const ex2 = await cli(['audit', 'export', '--config', configFile, '--out', part, '--from', '4']);
    assert.match(ex2.stdout, /--pruned/);
    assert.equal((await cli(['audit', 'verify', part, '--key', pubFile, '--pruned'])).code, 0);

    pg.psql('ALTER TABLE keygate_audit DISABLE TRIGGER USER');
    pg.psql(
      `UPDATE keygate_audit SET line = replace(line, '"req-3"', '"req-X"') WHERE line LIKE '%"req-3"%'`,
    );
    const bad = await cli(['audit', 'verify', '--postgres', '--config', configFile, '--key', pubFile]);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stdout,
      /^FAILED: edited in keygate_audit line \d+: row seq \d+: its hash column does not match/,
    );

    assert.equal((await cli(['audit', 'verify', '--postgres', '--key', pubFile])).code, 2);
    assert.equal(
      (await cli(['audit', 'verify', '--postgres', '--config', configFile, '--key', pubFile, '--from', 'x']))
        .code,
      2,
    );
  });
});
