import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { systemRandom } from '@keygate/shared/crypto';
import type { RunningGateway } from './main.js';
import {
  type CallResult,
  type ClientCert,
  call,
  createGatewayFixture,
  errorCode,
  type GatewayFixture,
  INSTANCE,
  postgresStoreYaml,
} from './testing/gateway-fixture.js';
import { MemoryKeyStore } from './testing/memory-key-store.js';
import { startTestPostgres, type TestPostgres } from './testing/postgres.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';
import {
  CLI,
  fetchToken,
  readAuditRecords,
  readAuditText,
  requestToken,
  tokenAndAuditYaml,
} from './testing/token-mode.js';

const run = promisify(execFile);

describe('identities in PostgreSQL: CLI, admin API and revocation through a real gateway (mTLS, SoftHSM2)', () => {
  let pg: TestPostgres;
  let fx: GatewayFixture;
  let config: string;
  let fileConfig: string;
  let auditDir: string;
  let gw: RunningGateway;
  const log = captureLines();
  const secrets: string[] = [];
  let adminKey = '';
  let adminToken = '';

  const cli = async (...args: string[]) => run(process.execPath, [CLI, ...args, '--config', config]);
  const api = (
    method: string,
    path: string,
    opts: { client: ClientCert; token?: string; instance?: string; body?: unknown },
  ): Promise<CallResult> =>
    call(gw.url, method, path, {
      ca: fx.ca.certPem,
      client: opts.client,
      ...(opts.instance ? { instance: opts.instance } : {}),
      ...(opts.body !== undefined ? { body: opts.body } : {}),
      headers: opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` },
    });
  const admin = (method: string, path: string, body?: unknown) =>
    api(method, path, {
      client: fx.clients.admin,
      token: adminToken,
      ...(body === undefined ? {} : { body }),
    });

  before(async () => {
    pg = await startTestPostgres({ fast: true });
    fx = await createGatewayFixture();
    auditDir = join(fx.softhsm.dir, 'pg-audit');
    const tokens = await tokenAndAuditYaml(fx, 'pg', { auditDir, leeway: '1s' });
    config = fx.writeConfig('pg-identities', {
      access: false,
      store: postgresStoreYaml(pg, ['reconcileInterval: 500ms']),
      extra: tokens,
    });
    const yamlKeyHash = `sha256:${'0'.repeat(64)}`;
    fileConfig = fx.writeConfig('file-identities', {
      access: false,
      extra: `identities:
  - name: svc
    apiKeyHashes: ['${yamlKeyHash}']
    certIdentities: [x]
    roles: { ${INSTANCE}: [wrap] }
${tokens}`,
    });
  });

  after(async () => {
    await gw?.close();
    fx?.softhsm.cleanup();
    await pg?.remove();
  });

  it('the CLI bootstraps an admin identity and API key in the database (no gateway running)', async () => {
    const created = await cli(
      'identities',
      'create',
      'ops-admin',
      '--cert-identity',
      'ops-admin',
      '--role',
      '*=identities:admin',
    );
    const view = JSON.parse(created.stdout) as { name: string; roles: Record<string, string[]> };
    assert.equal(view.name, 'ops-admin');
    assert.deepEqual(view.roles, { '*': ['identities:admin'] });
    const key = await cli('apikey', 'create', '--identity', 'ops-admin', '--label', 'bootstrap');
    adminKey = key.stdout.trim();
    assert.match(adminKey, /^kg_[A-Za-z0-9_-]{43}$/);
    assert.match(key.stderr, /API key ak-[0-9a-f]{20} for identity ops-admin/);
    assert.ok(!key.stderr.includes(adminKey), 'the key is printed once, on stdout');
    secrets.push(adminKey);
    const list = JSON.parse((await cli('identities', 'list')).stdout) as {
      name: string;
      apiKeys: unknown[];
    }[];
    assert.deepEqual(
      list.map((i) => [i.name, i.apiKeys.length]),
      [['ops-admin', 1]],
    );
    assert.ok(!pg.psql('SELECT * FROM keygate_api_keys').includes(adminKey));
    // Bad input is refused before the database is touched.
    await assert.rejects(
      cli('identities', 'create', 'x', '--cert-identity', 'c', '--role', 'inst-a=root'),
      /not one of/,
    );
    await assert.rejects(
      cli('identities', 'create', 'ops-admin', '--cert-identity', 'c', '--role', 'inst-a=wrap'),
      /IDENTITY_EXISTS/,
    );
    // With identities in the config file the commands refuse.
    await assert.rejects(
      run(process.execPath, [CLI, 'identities', 'list', '--config', fileConfig]),
      /IDENTITIES_READ_ONLY/,
    );
  });

  it('starts a gateway whose tokens come from database identities; admin routes need identities:admin', async () => {
    gw = await startGatewayFromFile(config, { store: new MemoryKeyStore(), logDestination: log.stream });
    // The key store is injected, so nothing else opens the database here (PostgresKeyStore does in production).
    await gw.runtime.database?.open();
    let token = '';
    const end = Date.now() + 5000;
    while (token === '') {
      const r = await requestToken(gw.url, fx.ca.certPem, fx.clients.admin, adminKey);
      if (r.status === 200) token = String(r.json<{ access_token: string }>().access_token);
      else if (Date.now() > end) assert.fail(`no token: ${r.text}`);
      else await sleep(50);
    }
    // The identities are loaded a moment after the database opens: until then tokens are refused.
    await until(
      async () =>
        (await api('GET', '/api/v2/keygate/identities', { client: fx.clients.admin, token })).status === 200,
    );
    await until(
      async () =>
        (await call(gw.url, 'GET', '/readyz', { client: fx.clients.admin, ca: fx.ca.certPem })).status ===
        200,
    );
    adminToken = token;
    secrets.push(adminToken);
    const none = await api('GET', '/api/v2/keygate/identities', { client: fx.clients.admin });
    assert.equal(none.status, 401);
    assert.equal(errorCode(none), 'AUTH_TOKEN_MISSING');
  });

  it('creates an identity and an API key over the API; roles changes and revocation take effect on the next request', async () => {
    const created = await admin('POST', '/api/v2/keygate/identities', {
      name: 'prod-eu-1',
      certIdentities: ['spiffe://keygate/cluster/prod-eu-1'],
      roles: { [INSTANCE]: ['wrap', 'unwrap', 'keys:admin'] },
    });
    assert.equal(created.status, 201, created.text);
    const dup = await admin('POST', '/api/v2/keygate/identities', {
      name: 'prod-eu-1',
      certIdentities: ['c'],
      roles: { [INSTANCE]: ['wrap'] },
    });
    assert.equal(dup.status, 409);
    assert.equal(errorCode(dup), 'IDENTITY_EXISTS');
    const bad = await admin('POST', '/api/v2/keygate/identities', {
      name: 'x',
      certIdentities: ['c'],
      roles: { [INSTANCE]: ['identities:admin'] },
    });
    assert.equal(bad.status, 400, bad.text);
    const k = await admin('POST', '/api/v2/keygate/identities/prod-eu-1/apikeys', { label: 'eu-1' });
    assert.equal(k.status, 201, k.text);
    assert.equal(k.headers['cache-control'], 'no-store');
    const { apiKey, id } = k.json<{ apiKey: string; id: string }>();
    secrets.push(apiKey);
    const appToken = await fetchToken(gw.url, fx.ca.certPem, fx.clients.allowed, apiKey);
    secrets.push(appToken);
    // An application identity may not manage identities.
    const forbidden = await api('GET', '/api/v2/keygate/identities', {
      client: fx.clients.allowed,
      token: appToken,
    });
    assert.equal(forbidden.status, 403);
    assert.equal(errorCode(forbidden), 'FORBIDDEN_ERR');
    const key = await api('POST', '/api/v2/keys', {
      client: fx.clients.allowed,
      token: appToken,
      instance: INSTANCE,
      body: {
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'pg-identities' }],
      },
    });
    assert.equal(key.status, 201, key.text);
    const keyId = String(key.json<{ resources: { id: string }[] }>().resources[0]?.id);
    const dek = systemRandom(32).toString('base64');
    const wrap = () =>
      api('POST', `/api/v2/keys/${keyId}/actions/wrap`, {
        client: fx.clients.allowed,
        token: appToken,
        instance: INSTANCE,
        body: { plaintext: dek },
      });
    assert.equal((await wrap()).status, 200);
    // Role change over the API: the same token loses wrap on its next request.
    const put = await admin('PUT', '/api/v2/keygate/identities/prod-eu-1', {
      certIdentities: ['spiffe://keygate/cluster/prod-eu-1'],
      roles: { [INSTANCE]: ['unwrap'] },
    });
    assert.equal(put.status, 200, put.text);
    const noWrap = await wrap();
    assert.equal(noWrap.status, 403);
    assert.equal(errorCode(noWrap), 'FORBIDDEN_ERR');
    await admin('PUT', '/api/v2/keygate/identities/prod-eu-1', {
      certIdentities: ['spiffe://keygate/cluster/prod-eu-1'],
      roles: { [INSTANCE]: ['wrap'] },
    });
    assert.equal((await wrap()).status, 200);
    // Revoked by another process (the CLI, a replica of its own): refused within 1 s.
    const revoked = JSON.parse((await cli('apikey', 'revoke', id)).stdout) as { revokedAt?: string };
    assert.ok(revoked.revokedAt);
    const t0 = Date.now();
    await until(async () => errorCode(await wrap()) === 'AUTH_TOKEN_REVOKED', 1000);
    assert.ok(Date.now() - t0 < 1000);
    const again = await requestToken(gw.url, fx.ca.certPem, fx.clients.allowed, apiKey);
    assert.equal(again.status, 400);
    // A new key works; deleting the identity refuses its tokens and frees nothing else.
    const k2 = await admin('POST', '/api/v2/keygate/identities/prod-eu-1/apikeys', {});
    const key2 = k2.json<{ apiKey: string }>().apiKey;
    secrets.push(key2);
    const t2 = await fetchToken(gw.url, fx.ca.certPem, fx.clients.allowed, key2);
    const del = await admin('DELETE', '/api/v2/keygate/identities/prod-eu-1');
    assert.equal(del.status, 204);
    const gone = await api('POST', `/api/v2/keys/${keyId}/actions/wrap`, {
      client: fx.clients.allowed,
      token: t2,
      instance: INSTANCE,
      body: { plaintext: dek },
    });
    assert.equal(errorCode(gone), 'AUTH_TOKEN_REVOKED');
    const get = await admin('GET', '/api/v2/keygate/identities/prod-eu-1');
    assert.equal(get.status, 404);
    assert.equal(errorCode(get), 'IDENTITY_NOT_FOUND');
    const unknownKey = await admin('DELETE', '/api/v2/keygate/apikeys/ak-nothing');
    assert.equal(errorCode(unknownKey), 'APIKEY_NOT_FOUND');
  });

  it('audits every admin call with its target, and no key or token reaches the logs or the audit files', async () => {
    const records = readAuditRecords(auditDir);
    const ops = records
      .filter((r) => String(r.operation ?? '').match(/^(identity|apikey)\./) && r.outcome === 'success')
      .map((r) => `${r.operation} ${r.target ?? ''}`);
    for (const want of [
      'identity.list ',
      'identity.create prod-eu-1',
      'apikey.create prod-eu-1',
      'identity.update prod-eu-1',
      'identity.delete prod-eu-1',
    ]) {
      assert.ok(ops.includes(want), `${want} in ${ops.join(', ')}`);
    }
    assert.ok(
      records.some(
        (r) => r.operation === 'identity.list' && r.outcome === 'denied' && r.errorCode === 'FORBIDDEN_ERR',
      ),
    );
    const text = readAuditText(auditDir);
    const logs = JSON.stringify(log.lines);
    for (const s of secrets) {
      assert.ok(!text.includes(s), 'a secret in the audit log');
      assert.ok(!logs.includes(s), 'a secret in the log');
    }
  });
  it('a replica started while the database is down is not ready until it has loaded the identities', async () => {
    pg.stop('fast');
    let late: RunningGateway | undefined;
    try {
      late = await startGatewayFromFile(config, { logDestination: captureLines().stream });
      const r = await call(late.url, 'GET', '/readyz', { client: fx.clients.admin, ca: fx.ca.certPem });
      assert.equal(r.status, 503, r.text);
      assert.match(r.text, /identities not loaded from the database yet/);
    } finally {
      pg.start();
    }
    const started = late as RunningGateway;
    try {
      await until(
        async () =>
          (await call(started.url, 'GET', '/readyz', { client: fx.clients.admin, ca: fx.ca.certPem }))
            .status === 200,
      );
      const token = await requestToken(started.url, fx.ca.certPem, fx.clients.admin, adminKey);
      assert.equal(token.status, 200, token.text);
    } finally {
      await started.close();
    }
  });
});

async function until(ok: () => Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) assert.fail(`not within ${ms} ms`);
    await sleep(20);
  }
}
