import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { systemRandom } from '@keygate/shared/crypto';
import type { RunningGateway } from './main.js';
import {
  type ClientCert,
  call,
  createGatewayFixture,
  errorCode,
  type GatewayFixture,
  INSTANCE,
  postgresStoreYaml,
} from './testing/gateway-fixture.js';
import { startTestPostgres, type TestPostgres } from './testing/postgres.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';
import { CLI, fetchToken, requestToken, tokenAndAuditYaml } from './testing/token-mode.js';

const run = promisify(execFile);

describe('clusters with identities in PostgreSQL: add, a real gateway issues the cluster a token, remove revokes it', () => {
  let pg: TestPostgres;
  let fx: GatewayFixture;
  let config: string;
  let gw: RunningGateway | undefined;
  let keyId = '';
  let caDir = '';
  let bundle = '';
  const cli = (...args: string[]) => run(process.execPath, [CLI, ...args, '--config', config]);

  before(async () => {
    pg = await startTestPostgres({ fast: true });
    fx = await createGatewayFixture();
    const dir = fx.softhsm.dir;
    const tokens = await tokenAndAuditYaml(fx, 'cl');
    caDir = join(dir, 'ca');
    mkdirSync(caDir);
    writeFileSync(join(caDir, 'ca.pem'), fx.ca.certPem);
    writeFileSync(join(caDir, 'ca-key.pem'), fx.ca.keyPem, { mode: 0o600 });
    bundle = join(dir, 'bundle-pg1');
    config = fx.writeConfig('clusters-pg', {
      access: false,
      store: postgresStoreYaml(pg, ['reconcileInterval: 500ms']),
      extra: tokens,
    });
  });

  after(async () => {
    await gw?.close();
    fx?.softhsm.cleanup();
    await pg?.remove();
  });

  it('clusters add creates identity, API key (hash only) and the keygate_clusters row, audited in the chain', async () => {
    const created = await cli('keys', 'create', '--instance', INSTANCE, '--name', 'crk-pg');
    keyId = (JSON.parse(created.stdout) as { id: string }).id;
    const add = await cli(
      'clusters',
      'add',
      'pg1',
      '--instance',
      INSTANCE,
      '--key',
      keyId,
      '--ca',
      caDir,
      '--gateway-url',
      'https://gw.example:8443',
      '--out',
      bundle,
    );
    const apiKey = readFileSync(join(bundle, 'api-key'), 'utf8').trim();
    assert.ok(!add.stdout.includes(apiKey) && !add.stderr.includes(apiKey), 'the key is never printed');
    assert.equal(
      pg.psql('SELECT name, instance, crk FROM keygate_clusters').trim(),
      `pg1|${INSTANCE}|${keyId}`,
    );
    assert.equal(
      pg.psql("SELECT cert_identities[1], roles::text FROM keygate_identities WHERE name = 'pg1'").trim(),
      `spiffe://keygate/cluster/pg1|{"${INSTANCE}": ["wrap", "unwrap", "rewrap"]}`,
    );
    assert.ok(!pg.psql('SELECT * FROM keygate_api_keys').includes(apiKey));
    const list = JSON.parse((await cli('clusters', 'list', '--json')).stdout) as {
      name: string;
      gatewayUrls: string[];
    }[];
    assert.deepEqual(
      list.map((c) => [c.name, c.gatewayUrls]),
      [['pg1', ['https://gw.example:8443']]],
    );
    await assert.rejects(
      cli(
        'clusters',
        'add',
        'pg1',
        '--instance',
        INSTANCE,
        '--key',
        keyId,
        '--ca',
        caDir,
        '--gateway-url',
        'https://gw.example:8443',
        '--out',
        join(bundle, 'again'),
      ),
      /CLUSTER_EXISTS/,
    );
    // A bad name and a role that is not an instance role are refused before anything is created.
    await assert.rejects(
      cli('clusters', 'add', 'a:b', '--instance', INSTANCE, '--key', keyId),
      /NAME: expected/,
    );
    await assert.rejects(
      cli('clusters', 'add', 'pg2', '--instance', INSTANCE, '--key', keyId, '--roles', 'identities:admin'),
      /--roles: identities:admin is not one of/,
    );
    assert.match(pg.psql('SELECT line FROM keygate_audit'), /"target":"pg1","operation":"cluster.add"/);
  });

  it('the bundle certificate and API key get a token and wrap; remove refuses the next request (AUTH_TOKEN_REVOKED)', async () => {
    gw = await startGatewayFromFile(config, { logDestination: captureLines().stream });
    const client: ClientCert = {
      cert: readFileSync(join(bundle, 'client.pem'), 'utf8'),
      key: readFileSync(join(bundle, 'client-key.pem'), 'utf8'),
    };
    const apiKey = readFileSync(join(bundle, 'api-key'), 'utf8').trim();
    const url = gw.url;
    const ca = fx.ca.certPem;
    let token = '';
    for (const end = Date.now() + 5000; token === ''; ) {
      try {
        token = await fetchToken(url, ca, client, apiKey);
      } catch (err) {
        if (Date.now() > end) throw err;
        await sleep(50);
      }
    }
    const wrap = () =>
      call(url, 'POST', `/api/v2/keys/${keyId}/actions/wrap`, {
        ca,
        client,
        instance: INSTANCE,
        body: { plaintext: systemRandom(32).toString('base64') },
        headers: { authorization: `Bearer ${token}` },
      });
    assert.equal((await wrap()).status, 200);
    await assert.rejects(cli('clusters', 'remove', 'pg1'), /--yes/);
    await cli('clusters', 'remove', 'pg1', '--yes');
    // Every replica hears the identity's deletion on the change feed within milliseconds.
    let refused = await wrap();
    for (const end = Date.now() + 2000; refused.status === 200 && Date.now() < end; ) {
      await sleep(20);
      refused = await wrap();
    }
    assert.equal(refused.status, 401);
    assert.equal(errorCode(refused), 'AUTH_TOKEN_REVOKED');
    assert.equal((await requestToken(url, ca, client, apiKey)).status, 400);
    assert.equal(pg.psql('SELECT count(*) FROM keygate_clusters').trim(), '0');
    assert.match(pg.psql('SELECT line FROM keygate_audit'), /"target":"pg1","operation":"cluster.remove"/);
    await assert.rejects(cli('clusters', 'show', 'pg1'), /CLUSTER_NOT_FOUND/);
  });
});
