import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { systemRandom } from '@keygate/shared/crypto';
import type { Pkcs11Hsm } from './adapters/pkcs11/pkcs11-hsm.js';
import type { RunningGateway } from './main.js';
import {
  BAD_PIN_TOKEN,
  type CallResult,
  call,
  createGatewayFixture,
  errorCode,
  type GatewayFixture,
  INSTANCE,
  OTHER_INSTANCE,
} from './testing/gateway-fixture.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';

interface KeyBody {
  resources: { id: string; state: number; keyVersion: { id: string } }[];
}

describe('gateway over HTTPS with mutual TLS and SoftHSM2', () => {
  let fx: GatewayFixture;
  let gw: RunningGateway;
  const log = captureLines();
  let api: (
    method: string,
    path: string,
    opts?: Omit<Parameters<typeof call>[3], 'ca'>,
  ) => Promise<CallResult>;

  const createKey = async (instance: string, name: string): Promise<string> => {
    const r = await api('POST', '/api/v2/keys', {
      client: fx.clients.admin,
      instance,
      body: {
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [{ type: 'application/vnd.ibm.kms.key+json', name }],
      },
    });
    assert.equal(r.status, 201, r.text);
    const id = r.json<KeyBody>().resources[0]?.id;
    assert.ok(id);
    return id;
  };
  const action = (keyId: string, act: string, body: unknown, instance = INSTANCE) =>
    api('POST', `/api/v2/keys/${keyId}/actions/${act}`, { client: fx.clients.allowed, instance, body });

  before(async () => {
    fx = await createGatewayFixture();
    gw = await startGatewayFromFile(fx.writeConfig('main'), { logDestination: log.stream });
    api = (method, path, opts = {}) => call(gw.url, method, path, { ...opts, ca: fx.ca.certPem });
  });

  after(async () => {
    await gw?.close();
    fx?.softhsm.cleanup();
  });

  it('wraps, unwraps and rewraps over HTTPS; every answer has a request id; correlation id echoed', async () => {
    const keyId = await createKey(INSTANCE, 'round-trip');
    const dek = systemRandom(32).toString('base64');
    const w = await api('POST', `/api/v2/keys/${keyId}/actions/wrap`, {
      client: fx.clients.allowed,
      instance: INSTANCE,
      body: { plaintext: dek, aad: ['default/secret-1'] },
      headers: { 'correlation-id': 'corr-123' },
    });
    assert.equal(w.status, 200, w.text);
    assert.match(String(w.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.equal(w.headers['correlation-id'], 'corr-123');
    const { ciphertext, keyVersion } = w.json<{ ciphertext: string; keyVersion: { id: string } }>();
    const u = await action(keyId, 'unwrap', { ciphertext, aad: ['default/secret-1'] });
    assert.equal(u.status, 200, u.text);
    assert.equal(u.json().plaintext, dek);
    assert.deepEqual(u.json().keyVersion, keyVersion);
    const rw = await action(keyId, 'rewrap', { ciphertext, aad: ['default/secret-1'] });
    assert.equal(rw.status, 200, rw.text);
    const u2 = await action(keyId, 'unwrap', { ciphertext: rw.json().ciphertext, aad: ['default/secret-1'] });
    assert.equal(u2.json().plaintext, dek);
    const gen = await action(keyId, 'wrap', {});
    assert.equal(Buffer.from(String(gen.json().plaintext), 'base64').length, 32);
    // The audit hook saw the operations, with a hash of the blob and never the DEK.
    const audits = log.lines.filter((l) => l.msg === 'audit');
    assert.ok(audits.some((l) => (l.audit as { operation?: string }).operation === 'unwrap'));
    assert.ok(!JSON.stringify(log.lines).includes(dek));
  });

  it('refuses a client with no certificate, or one from another CA, at the handshake', async () => {
    await assert.rejects(api('GET', '/healthz', {}));
    await assert.rejects(api('GET', '/healthz', { client: fx.clients.foreign }));
    assert.equal((await api('GET', '/healthz', { client: fx.clients.stranger })).status, 200);
  });

  it('answers 403 in Key Protect error shape for an identity not allowed on the instance', async () => {
    const keyId = await createKey(INSTANCE, 'forbidden');
    const r = await api('POST', `/api/v2/keys/${keyId}/actions/wrap`, {
      client: fx.clients.stranger,
      instance: INSTANCE,
      body: {},
    });
    assert.equal(r.status, 403);
    assert.equal(errorCode(r), 'FORBIDDEN_ERR');
    assert.equal(
      r.json().metadata && (r.json().metadata as { collectionType: string }).collectionType,
      'application/vnd.ibm.kms.error+json',
    );
    assert.ok(r.headers['x-request-id']);
    const admin = await api('POST', `/api/v2/keys/${keyId}/actions/wrap`, {
      client: fx.clients.allowed,
      instance: 'inst-zzz',
      body: {},
    });
    assert.equal(admin.status, 403);
  });

  it('after rotate, old blobs unwrap and come back re-wrapped; after destroy, 410 and the objects are gone', async () => {
    const keyId = await createKey(INSTANCE, 'rotating');
    const old = (await action(keyId, 'wrap', { aad: ['a'] })).json<{
      ciphertext: string;
      plaintext: string;
      keyVersion: { id: string };
    }>();
    const rot = await api('POST', `/api/v2/keys/${keyId}/actions/rotate`, {
      client: fx.clients.admin,
      instance: INSTANCE,
    });
    assert.equal(rot.status, 204, rot.text);
    const got = (
      await api('GET', `/api/v2/keys/${keyId}`, { client: fx.clients.allowed, instance: INSTANCE })
    ).json<KeyBody>();
    const v2 = got.resources[0]?.keyVersion.id;
    assert.notEqual(v2, old.keyVersion.id);
    const fresh = await action(keyId, 'wrap', { aad: ['a'] });
    assert.equal(fresh.json<{ keyVersion: { id: string } }>().keyVersion.id, v2);
    // keys.rewrapOnUnwrap is off by default: unwrap answers the DEK only; rewrap moves the blob.
    const plain = (await action(keyId, 'unwrap', { ciphertext: old.ciphertext, aad: ['a'] })).json<{
      plaintext: string;
      ciphertext?: string;
      rewrappedKeyVersion?: { id: string };
    }>();
    assert.equal(plain.plaintext, old.plaintext);
    assert.equal(plain.ciphertext, undefined);
    assert.equal(plain.rewrappedKeyVersion, undefined);
    const u = (await action(keyId, 'rewrap', { ciphertext: old.ciphertext, aad: ['a'] })).json<{
      ciphertext: string;
      rewrappedKeyVersion: { id: string };
    }>();
    assert.equal(u.rewrappedKeyVersion.id, v2);
    assert.equal(
      (await action(keyId, 'unwrap', { ciphertext: u.ciphertext, aad: ['a'] })).json().plaintext,
      old.plaintext,
    );
    assert.ok(fx.softhsm.listObjectLabels(fx.tokenLabel, fx.pin).some((l) => l.includes(keyId)));
    const del = await api('DELETE', `/api/v2/keys/${keyId}`, {
      client: fx.clients.admin,
      instance: INSTANCE,
    });
    assert.equal(del.status, 204, del.text);
    const gone = await action(keyId, 'unwrap', { ciphertext: old.ciphertext, aad: ['a'] });
    assert.equal(gone.status, 410);
    assert.equal(errorCode(gone), 'KEY_DELETED_ERR');
    assert.ok(!fx.softhsm.listObjectLabels(fx.tokenLabel, fx.pin).some((l) => l.includes(keyId)));
  });

  it('serves metadata and versions to keys:read, refuses bad list queries, and honours Prefer as Key Protect', async () => {
    const minimal = await api('POST', '/api/v2/keys', {
      client: fx.clients.admin,
      instance: INSTANCE,
      headers: { prefer: 'return=minimal' },
      body: {
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'prefer-minimal' }],
      },
    });
    assert.equal(minimal.status, 201, minimal.text);
    const created = minimal.json<{ resources: Record<string, unknown>[] }>().resources;
    assert.deepEqual(Object.keys(created[0] ?? {}).sort(), ['id', 'type']);
    const keyId = String(created[0]?.id);
    const admin = { client: fx.clients.admin, instance: INSTANCE };
    const reader = { client: fx.clients.allowed, instance: INSTANCE };
    const withPayload = await api('POST', `/api/v2/keys/${keyId}/actions/rotate`, {
      ...admin,
      body: { payload: Buffer.alloc(32).toString('base64') },
    });
    assert.equal(errorCode(withPayload), 'BAD_BODY_ERR');
    assert.equal((await api('POST', `/api/v2/keys/${keyId}/actions/rotate`, admin)).status, 204);

    const meta = await api('GET', `/api/v2/keys/${keyId}/metadata`, reader);
    assert.equal(meta.status, 200, meta.text);
    assert.equal(meta.json<KeyBody>().resources[0]?.state, 1);
    const versions = await api('GET', `/api/v2/keys/${keyId}/versions?limit=1&totalCount=true`, reader);
    assert.equal(versions.status, 200, versions.text);
    assert.deepEqual(versions.json().metadata, {
      collectionType: 'application/vnd.ibm.kms.key.version+json',
      collectionTotal: 1,
      totalCount: 2,
    });
    assert.equal(versions.json<KeyBody>().resources[0]?.id, meta.json<KeyBody>().resources[0]?.keyVersion.id);
    for (const path of [`/api/v2/keys/${keyId}/metadata`, `/api/v2/keys/${keyId}/versions`]) {
      const r = await api('GET', path, { client: fx.clients.stranger, instance: INSTANCE });
      assert.equal(errorCode(r), 'FORBIDDEN_ERR', path);
    }
    for (const qs of ['limit=0', 'limit=5001', 'offset=-1', 'state=1,', 'search=x', 'extractable=maybe']) {
      const r = await api('GET', `/api/v2/keys?${qs}`, reader);
      assert.equal(r.status, 400, qs);
      assert.equal(errorCode(r), 'INVALID_QUERY_PARAM_ERR', qs);
    }

    const del = await api('DELETE', `/api/v2/keys/${keyId}`, {
      ...admin,
      headers: { prefer: 'return=representation' },
    });
    assert.equal(del.status, 200, del.text);
    const deleted = del.json<{ resources: { id: string; state: number; deleted: boolean }[] }>().resources[0];
    assert.deepEqual([deleted?.id, deleted?.state, deleted?.deleted], [keyId, 5, true]);
    const again = await api('DELETE', `/api/v2/keys/${keyId}`, admin);
    assert.equal(again.status, 410);
    assert.equal(errorCode(again), 'KEY_DELETED_ERR');
  });

  it('answers 422 for other aad or another instance', async () => {
    const keyA = await createKey(INSTANCE, 'bound');
    const keyB = await createKey(OTHER_INSTANCE, 'bound');
    const w = (await action(keyA, 'wrap', { aad: ['ns/a'] })).json<{ ciphertext: string }>();
    const otherAad = await action(keyA, 'unwrap', { ciphertext: w.ciphertext, aad: ['ns/b'] });
    assert.equal(otherAad.status, 422);
    assert.equal(errorCode(otherAad), 'UNPROCESSABLE_CIPHERTEXT_ERR');
    const otherInstance = await action(
      keyB,
      'unwrap',
      { ciphertext: w.ciphertext, aad: ['ns/a'] },
      OTHER_INSTANCE,
    );
    assert.equal(otherInstance.status, 422);
    assert.equal(errorCode(otherInstance), 'UNPROCESSABLE_CIPHERTEXT_ERR');
  });

  it('answers bad requests and hundreds of random or mutated blobs with stable 4xx codes, and keeps serving', async () => {
    const keyId = await createKey(INSTANCE, 'fuzz');
    const path = `/api/v2/keys/${keyId}/actions/unwrap`;
    const send = (rawBody: string, headers: Record<string, string> = {}) =>
      api('POST', path, { client: fx.clients.allowed, instance: INSTANCE, rawBody, headers });
    const expect = async (p: Promise<CallResult>, status: number, code: string) => {
      const r = await p;
      assert.equal(r.status, status, r.text);
      assert.equal(errorCode(r), code);
      assert.ok(!r.text.includes('at '), 'no stack');
    };
    await expect(send('{"ciphertext":'), 400, 'BAD_BODY_ERR');
    await expect(send('[1,2]'), 400, 'BAD_BODY_ERR');
    await expect(send('{"ciphertext":"!!not base64!!"}'), 400, 'INVALID_FIELD_ERR');
    await expect(send('{"ciphertext":"AAAA","extra":1}'), 400, 'BAD_BODY_ERR');
    await expect(send(JSON.stringify({ ciphertext: 'A'.repeat(20000) })), 413, 'BODY_TOO_LARGE_ERR');
    await expect(send('{}', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE_ERR');
    await expect(
      api('POST', path, { client: fx.clients.allowed, body: {} }),
      400,
      'INSTANCE_HEADER_MISSING_ERR',
    );
    await expect(api('GET', '/nope', { client: fx.clients.allowed }), 404, 'NOT_FOUND_ERR');
    await expect(action(keyId, 'explode', {}), 404, 'NOT_FOUND_ERR');
    await expect(action('no-such-key', 'unwrap', { ciphertext: 'AAAA' }), 404, 'KEY_NOT_FOUND_ERR');
    const good = Buffer.from(
      (await action(keyId, 'wrap', {})).json<{ ciphertext: string }>().ciphertext,
      'base64',
    );
    const statuses = new Map<string, number>();
    for (let start = 0; start < 300; start += 30) {
      const batch = await Promise.all(
        Array.from({ length: 30 }, (_, j) => {
          const i = start + j;
          let blob: Buffer;
          if (i % 2 === 0) blob = systemRandom(1 + (i % 120));
          else {
            blob = Buffer.from(good);
            blob[i % blob.length] = (blob[i % blob.length] ?? 0) ^ 0x5a;
          }
          return action(keyId, 'unwrap', { ciphertext: blob.toString('base64') });
        }),
      );
      for (const r of batch)
        statuses.set(`${r.status} ${errorCode(r)}`, (statuses.get(`${r.status} ${errorCode(r)}`) ?? 0) + 1);
    }
    assert.deepEqual(
      [...statuses.keys()],
      ['422 UNPROCESSABLE_CIPHERTEXT_ERR'],
      JSON.stringify([...statuses]),
    );
    assert.equal((await action(keyId, 'unwrap', { ciphertext: good.toString('base64') })).status, 200);
  });

  it('keeps serving when the HSM sessions are closed under it', async () => {
    const keyId = await createKey(INSTANCE, 'sessions');
    const w = (await action(keyId, 'wrap', {})).json<{ ciphertext: string; plaintext: string }>();
    const hsm = gw.runtime.hsm as Pkcs11Hsm;
    hsm.token.lib.C_CloseAllSessions(hsm.token.slot);
    const rs = await Promise.all(
      Array.from({ length: 6 }, () => action(keyId, 'unwrap', { ciphertext: w.ciphertext })),
    );
    for (const r of rs) assert.equal(r.json().plaintext, w.plaintext);
    const ready = await api('GET', '/readyz', { client: fx.clients.allowed });
    assert.equal(ready.status, 200, ready.text);
  });

  it('lists keys, serves /readyz, /healthz and /metrics', async () => {
    const list = await api('GET', '/api/v2/keys', { client: fx.clients.allowed, instance: INSTANCE });
    assert.equal(list.status, 200);
    assert.ok(list.json<KeyBody>().resources.length >= 3);
    const ready = await api('GET', '/readyz', { client: fx.clients.allowed });
    assert.equal(ready.json().status, 'ready');
    const metrics = await api('GET', '/metrics', { client: fx.clients.allowed });
    assert.match(
      metrics.text,
      /keygate_gateway_operations_total\{[^}]*operation="unwrap"[^}]*outcome="success"/,
    );
    assert.match(metrics.text, /keygate_gateway_operation_duration_seconds_bucket/);
    assert.match(metrics.text, /keygate_hsm_sessions\{[^}]*state="open"/);
  });

  it('in allow-list mode (no identities): warns that the audit is not durable; /identity/token is 404', async () => {
    assert.ok(log.lines.some((l) => l.level === 'warn' && /not durable/.test(String(l.msg))));
    assert.ok(log.lines.some((l) => l.level === 'warn' && /allow-list mode/.test(String(l.msg))));
    const r = await api('POST', '/identity/token', {
      client: fx.clients.allowed,
      rawBody: 'grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey=kg_x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    assert.equal(r.status, 404);
    assert.equal(errorCode(r), 'NOT_FOUND_ERR');
    assert.equal((await api('GET', '/.well-known/jwks.json', { client: fx.clients.allowed })).status, 404);
  });

  it('with a wrong PIN: one login attempt, /readyz not ready with the reason', async () => {
    const badLog = captureLines();
    const bad = await startGatewayFromFile(
      fx.writeConfig('bad', { pinEnv: 'KG_TEST_PIN', tokenLabel: BAD_PIN_TOKEN }),
      {
        logDestination: badLog.stream,
        env: { KG_TEST_PIN: '99999' },
      },
    );
    try {
      const r = await call(bad.url, 'GET', '/readyz', { client: fx.clients.allowed, ca: fx.ca.certPem });
      assert.equal(r.status, 503);
      assert.match(JSON.stringify(r.json()), /CKR_PIN_INCORRECT/);
      const keyId = await createKey(INSTANCE, 'unused');
      const w = await call(bad.url, 'POST', `/api/v2/keys/${keyId}/actions/wrap`, {
        client: fx.clients.allowed,
        ca: fx.ca.certPem,
        instance: INSTANCE,
        body: {},
      });
      assert.equal(w.status, 503);
      assert.equal(errorCode(w), 'HSM_PIN_INCORRECT');
      assert.equal(badLog.lines.filter((l) => l.msg === 'pkcs11 login').length, 1);
      assert.ok(!JSON.stringify(badLog.lines).includes('99999'));
    } finally {
      await bad.close();
    }
  });
});
