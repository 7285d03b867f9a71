import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
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
  OTHER_INSTANCE,
} from './testing/gateway-fixture.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';
import {
  CLI,
  fetchToken,
  readAuditRecords,
  readAuditText,
  requestToken,
  signToken,
  type TokenModeSetup,
  writeTokenModeConfig,
} from './testing/token-mode.js';

const run = promisify(execFile);

describe('token mode and the durable audit log, over HTTPS with mutual TLS and SoftHSM2', () => {
  let fx: GatewayFixture;
  let setup: TokenModeSetup;
  let gw: RunningGateway;
  let closed = false;
  const log = captureLines();
  /** Every secret a test used: none may appear in a log line or an audit file. */
  const secrets: string[] = [];
  let appToken: string;
  let adminToken: string;
  let keyId: string;

  const api = (
    method: string,
    path: string,
    opts: { client: ClientCert; token?: string; instance?: string; body?: unknown } = {
      client: { cert: '', key: '' },
    },
  ): Promise<CallResult> =>
    call(gw.url, method, path, {
      ca: fx.ca.certPem,
      client: opts.client,
      ...(opts.instance ? { instance: opts.instance } : {}),
      ...(opts.body !== undefined ? { body: opts.body } : {}),
      headers: opts.token === undefined ? {} : { authorization: `Bearer ${opts.token}` },
    });

  const wrap = (token: string, plaintext: string, instance = INSTANCE, client = fx.clients.allowed) =>
    api('POST', `/api/v2/keys/${keyId}/actions/wrap`, { client, token, instance, body: { plaintext } });

  before(async () => {
    fx = await createGatewayFixture();
    setup = await writeTokenModeConfig(fx, 'tokens');
    gw = await startGatewayFromFile(setup.config, { logDestination: log.stream });
    secrets.push(setup.apiKey, setup.adminApiKey);
    appToken = await fetchToken(gw.url, fx.ca.certPem, fx.clients.allowed, setup.apiKey);
    adminToken = await fetchToken(gw.url, fx.ca.certPem, fx.clients.admin, setup.adminApiKey);
    secrets.push(appToken, adminToken);
    const created = await api('POST', '/api/v2/keys', {
      client: fx.clients.admin,
      token: adminToken,
      instance: INSTANCE,
      body: {
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'token-mode' }],
      },
    });
    assert.equal(created.status, 201, created.text);
    keyId = String(created.json<{ resources: { id: string }[] }>().resources[0]?.id);
  });

  after(async () => {
    if (!closed) await gw?.close();
    fx?.softhsm.cleanup();
  });

  it('API key -> token (IAM JSON) -> wrap and unwrap; the JWKS publishes the public key only', async () => {
    const t = await requestToken(gw.url, fx.ca.certPem, fx.clients.allowed, setup.apiKey);
    assert.equal(t.status, 200, t.text);
    const body = t.json<{
      access_token: string;
      token_type: string;
      expires_in: number;
      expiration: number;
    }>();
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 600);
    assert.ok(body.expiration > Date.now() / 1000);
    secrets.push(body.access_token);
    const dek = systemRandom(32).toString('base64');
    secrets.push(dek);
    const w = await wrap(body.access_token, dek);
    assert.equal(w.status, 200, w.text);
    const u = await api('POST', `/api/v2/keys/${keyId}/actions/unwrap`, {
      client: fx.clients.allowed,
      token: body.access_token,
      instance: INSTANCE,
      body: { ciphertext: w.json().ciphertext },
    });
    assert.equal(u.status, 200, u.text);
    assert.equal(u.json().plaintext, dek);
    const jwks = await api('GET', '/.well-known/jwks.json', { client: fx.clients.stranger });
    assert.equal(jwks.status, 200);
    const keys = jwks.json<{ keys: Record<string, string>[] }>().keys;
    assert.equal(keys.length, 1);
    assert.deepEqual(Object.keys(keys[0] ?? {}).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
  });

  it('refuses bad token requests with IAM error bodies and stable codes', async () => {
    const iam = (r: CallResult) =>
      r.json<{ errorCode: string; keygateCode: string; context: { requestId: string } }>();
    const wrongKey = await requestToken(gw.url, fx.ca.certPem, fx.clients.allowed, `kg_${'A'.repeat(43)}`);
    assert.equal(wrongKey.status, 400);
    assert.equal(iam(wrongKey).keygateCode, 'AUTH_APIKEY_INVALID');
    assert.equal(iam(wrongKey).errorCode, 'BXNIM0415E');
    assert.equal(iam(wrongKey).context.requestId, wrongKey.headers['x-request-id']);
    const grant = await requestToken(gw.url, fx.ca.certPem, fx.clients.allowed, setup.apiKey, 'password');
    assert.equal(grant.status, 400);
    assert.equal(iam(grant).keygateCode, 'AUTH_GRANT_TYPE_INVALID');
    // A valid key over a certificate the identity does not list.
    const otherCert = await requestToken(gw.url, fx.ca.certPem, fx.clients.stranger, setup.apiKey);
    assert.equal(otherCert.status, 403);
    assert.equal(iam(otherCert).keygateCode, 'FORBIDDEN_ERR');
    assert.ok(!otherCert.text.includes(setup.apiKey));
  });

  it('refuses missing, garbage, expired, foreign-instance, role-less and re-bound tokens with stable 4xx codes', async () => {
    const dek = systemRandom(32).toString('base64');
    secrets.push(dek);
    const none = await api('POST', `/api/v2/keys/${keyId}/actions/wrap`, {
      client: fx.clients.allowed,
      instance: INSTANCE,
      body: { plaintext: dek },
    });
    assert.equal(none.status, 401);
    assert.equal(errorCode(none), 'AUTH_TOKEN_MISSING');
    const garbage = await wrap('a.b.c', dek);
    assert.equal(garbage.status, 401);
    assert.equal(errorCode(garbage), 'AUTH_TOKEN_INVALID');

    // Signed with the gateway's own key, but two hours ago with a 10-minute lifetime.
    const expired = await signToken(setup.signingKeyFile, {
      subject: 'prod-eu-1',
      roles: { [INSTANCE]: ['wrap'] },
      cert: fx.clients.allowed,
      at: new Date(Date.now() - 2 * 3_600_000),
      lifetimeSeconds: 600,
    });
    secrets.push(expired);
    const exp = await wrap(expired, dek);
    assert.equal(exp.status, 401);
    assert.equal(errorCode(exp), 'AUTH_TOKEN_EXPIRED');

    // The app's token holds roles on INSTANCE only.
    const foreign = await wrap(appToken, dek, OTHER_INSTANCE);
    assert.equal(foreign.status, 403);
    assert.equal(errorCode(foreign), 'FORBIDDEN_ERR');

    // wrap/unwrap/keys:read, but not keys:admin; and the admin has no wrap.
    const rotate = await api('POST', `/api/v2/keys/${keyId}/actions/rotate`, {
      client: fx.clients.allowed,
      token: appToken,
      instance: INSTANCE,
    });
    assert.equal(rotate.status, 403);
    assert.equal(errorCode(rotate), 'FORBIDDEN_ERR');
    const adminWrap = await wrap(adminToken, dek, INSTANCE, fx.clients.admin);
    assert.equal(adminWrap.status, 403);
    assert.equal(errorCode(adminWrap), 'FORBIDDEN_ERR');
    const read = await api('GET', `/api/v2/keys/${keyId}`, {
      client: fx.clients.allowed,
      token: appToken,
      instance: INSTANCE,
    });
    assert.equal(read.status, 200, read.text);

    // The app's token presented over another client certificate of the same CA.
    const stolen = await wrap(appToken, dek, INSTANCE, fx.clients.stranger);
    assert.equal(stolen.status, 401);
    assert.equal(errorCode(stolen), 'AUTH_TOKEN_CERT_MISMATCH');
  });

  it('N answered key operations from 32 concurrent callers leave exactly N key-operation records', async () => {
    const before = readAuditRecords(setup.auditDir).filter((r) => r.type === 'event').length;
    const total = 300;
    const answered = new Map<string, number>();
    let next = 0;
    const blobs: string[] = [];
    const worker = async () => {
      for (let i = next++; i < total; i = next++) {
        let r: CallResult;
        const blob = blobs.pop();
        if (i % 2 === 1 && blob !== undefined) {
          r = await api('POST', `/api/v2/keys/${keyId}/actions/unwrap`, {
            client: fx.clients.allowed,
            token: appToken,
            instance: INSTANCE,
            body: { ciphertext: blob },
          });
        } else {
          const dek = systemRandom(32).toString('base64');
          secrets.push(dek);
          r = await wrap(appToken, dek);
          if (r.status === 200) blobs.push(String(r.json().ciphertext));
        }
        answered.set(String(r.headers['x-request-id']), r.status);
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    assert.equal(answered.size, total);
    assert.ok([...answered.values()].every((s) => s === 200));
    const events = readAuditRecords(setup.auditDir).filter((r) => r.type === 'event');
    const keyOps = events.filter((r) => r.operation === 'wrap' || r.operation === 'unwrap');
    const fromLoad = keyOps.filter((r) => answered.has(String(r.requestId)));
    assert.equal(fromLoad.length, total);
    assert.equal(new Set(fromLoad.map((r) => r.requestId)).size, total);
    assert.equal(events.length - before, total);
    // Token records: granted and refused, with the certificate identity and subject.
    const tokenRecords = events.filter((r) => r.operation === 'token.issue');
    assert.ok(tokenRecords.some((r) => r.outcome === 'success' && r.subject === 'prod-eu-1'));
    assert.ok(
      tokenRecords.some(
        (r) =>
          r.outcome === 'denied' &&
          r.errorCode === 'FORBIDDEN_ERR' &&
          r.certIdentity === 'spiffe://keygate/cluster/stranger' &&
          r.subject === 'prod-eu-1',
      ),
    );
    assert.ok(tokenRecords.some((r) => r.outcome === 'denied' && r.errorCode === 'AUTH_APIKEY_INVALID'));
    const verify = await run(process.execPath, [
      CLI,
      'audit',
      'verify',
      setup.auditDir,
      '--key',
      setup.auditPublicKeyFile,
    ]);
    assert.match(verify.stdout, /^OK: /);
  });

  it('after close the log is sealed and verifies; no API key, token, DEK or plaintext in any log or audit line', async () => {
    await gw.close();
    closed = true;
    const verify = await run(process.execPath, [
      CLI,
      'audit',
      'verify',
      setup.auditDir,
      '--key',
      setup.auditPublicKeyFile,
      '--sealed',
    ]);
    assert.match(verify.stdout, /^OK: .*, sealed$/m);
    const tail = await run(process.execPath, [CLI, 'audit', 'tail', setup.auditDir, '-n', '3']);
    assert.match(tail.stdout, /checkpoint \(close/);
    const logs = JSON.stringify(log.lines);
    const audit = readAuditText(setup.auditDir);
    assert.ok(secrets.length > 150);
    for (const s of secrets) {
      assert.ok(!logs.includes(s), 'a secret is in the log');
      assert.ok(!audit.includes(s), 'a secret is in the audit log');
      const hex = Buffer.from(s, 'base64').toString('hex');
      if (hex.length === 64) assert.ok(!logs.includes(hex) && !audit.includes(hex));
    }
    // The tampered log no longer verifies (the CLI names the file and line, exit 1).
    const file = join(
      setup.auditDir,
      readdirSync(setup.auditDir).filter((n) => n.endsWith('.jsonl'))[0] ?? '',
    );
    writeFileSync(file, readFileSync(file, 'utf8').replace('"outcome":"denied"', '"outcome":"success"'));
    const bad = await run(process.execPath, [
      CLI,
      'audit',
      'verify',
      setup.auditDir,
      '--key',
      setup.auditPublicKeyFile,
    ]).then(
      () => undefined,
      (err: { code: number; stdout: string }) => err,
    );
    assert.equal(bad?.code, 1);
    assert.match(String(bad?.stdout), /^FAILED: edited in audit-.*\.jsonl line \d+/);
  });
});
