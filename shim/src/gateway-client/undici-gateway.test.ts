import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { KeygateError, Secret } from '@keygate/shared';
import { FakeKeyProtectServer } from '../testing/fake-key-protect-server.js';
import { hasOpenssl, makeTestPki, type TestPki } from '../testing/test-pki.js';
import { UndiciGatewayClient, type UndiciGatewayOptions } from './undici-gateway.js';

const API_KEY = 'test-api-key-123';
const AAD = ['keygate-shim', 'crk-1'];

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof KeygateError, String(err));
    assert.equal(err.code, code);
    return true;
  });
}

describe('UndiciGatewayClient against the Key Protect test fake (real mTLS)', { skip: !hasOpenssl() }, () => {
  let pki: TestPki;
  let kp: FakeKeyProtectServer;
  const clients: UndiciGatewayClient[] = [];
  const servers: FakeKeyProtectServer[] = [];

  function client(over: Partial<UndiciGatewayOptions> = {}, server = kp): UndiciGatewayClient {
    const c = new UndiciGatewayClient({
      urls: [server.url],
      instanceId: 'inst-1',
      crkId: 'crk-1',
      tokenUrl: server.tokenUrl,
      apiKey: new Secret(API_KEY, 'inline'),
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      tokenTls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
      maxRetries: 2,
      deadlineMs: 1500,
      breaker: { failureThreshold: 3, openMs: 5000 },
      ...over,
    });
    clients.push(c);
    return c;
  }

  async function server(over: { tokenTtlSeconds?: number } = {}): Promise<FakeKeyProtectServer> {
    const s = await FakeKeyProtectServer.start({
      pki,
      apiKey: API_KEY,
      instanceId: 'inst-1',
      crkId: 'crk-1',
      ...over,
    });
    servers.push(s);
    return s;
  }

  before(async () => {
    pki = makeTestPki();
    kp = await server();
  });
  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(servers.map((s) => s.stop()));
  });

  it('wraps and unwraps over mTLS, fetching the token once', async () => {
    const c = client();
    const dek = Buffer.alloc(32, 5);
    const w = await c.wrap(dek, AAD);
    assert.equal(w.keyVersionId, kp.currentVersion);
    for (let i = 0; i < 5; i++) assert.deepEqual((await c.unwrap(w.wrappedDek, AAD)).dek, dek);
    assert.equal(c.tokenFetches, 1);
    await rejectsWith(c.unwrap(w.wrappedDek, ['other']), 'UNPROCESSABLE_CIPHERTEXT_ERR');
  });

  it('refreshes an expiring token with one fetch for many concurrent callers', async () => {
    const s = await server({ tokenTtlSeconds: 1 });
    const c = client({}, s);
    const w = await c.wrap(Buffer.alloc(32, 1), AAD);
    await new Promise((r) => setTimeout(r, 1100));
    const before = s.counts.token;
    await Promise.all(Array.from({ length: 20 }, () => c.unwrap(w.wrappedDek, AAD)));
    assert.equal(s.counts.token - before, 1);
  });

  it('fetches a new token once when the gateway rejects the cached one', async () => {
    const s = await server();
    const c = client({}, s);
    await c.wrap(Buffer.alloc(32, 1), AAD);
    s.revokeTokens();
    await c.wrap(Buffer.alloc(32, 1), AAD);
    assert.equal(c.tokenFetches, 2);
  });

  it('refuses a wrong API key with GATEWAY_REFUSED and no retries', async () => {
    const s = await server();
    const c = client({ apiKey: new Secret('wrong', 'inline') }, s);
    await rejectsWith(c.wrap(Buffer.alloc(32), AAD), 'GATEWAY_REFUSED');
    assert.equal(s.counts.token, 1);
  });

  it('translates Key Protect errors without retrying them', async () => {
    const s = await server();
    const c = client({}, s);
    s.failWith = 'KEY_DELETED_ERR';
    await rejectsWith(c.wrap(Buffer.alloc(32), AAD), 'KEY_DELETED_ERR');
    s.failWith = 'KEY_ACTION_INVALID_STATE_ERR';
    await rejectsWith(c.wrap(Buffer.alloc(32), AAD), 'KEY_ACTION_INVALID_STATE_ERR');
    s.failWith = 'FORBIDDEN_ERR';
    await rejectsWith(c.wrap(Buffer.alloc(32), AAD), 'GATEWAY_REFUSED');
    assert.equal(s.counts.wrap, 3);
    s.failWith = undefined;
    s.failStatus = 503;
    await rejectsWith(c.wrap(Buffer.alloc(32), AAD), 'GATEWAY_UNAVAILABLE');
    assert.equal(s.counts.wrap, 3 + 3, 'a 503 is retried MAX_RETRIES times');
  });

  it('treats a bare 410 or 404 (a proxy, a wrong URL) as a protocol error, not a key state', async () => {
    const s = await server();
    const c = client({ maxRetries: 0 }, s);
    s.failStatus = 410;
    await rejectsWith(c.wrap(Buffer.alloc(32), AAD), 'GATEWAY_PROTOCOL_ERR');
    s.failStatus = 404;
    await rejectsWith(c.unwrap(Buffer.alloc(40), AAD), 'GATEWAY_PROTOCOL_ERR');
    s.failStatus = undefined;
    s.failWith = 'HSM_KEY_OBJECT_MISSING';
    await rejectsWith(c.wrap(Buffer.alloc(32), AAD), 'GATEWAY_UNAVAILABLE');
    s.failWith = undefined;
  });

  it('does not retry a 404 or 409 the gateway named a code for; retries a bare one and an unknown route', async () => {
    const s = await server();
    const c = client({}, s);
    // The gateway decided (a rotation guard, a current version): the same call gets the same answer.
    for (const code of ['ROTATION_NOT_CONVERGED', 'KEY_VERSION_CURRENT_ERR'] as const) {
      const before = s.counts.wrap;
      s.failWith = code;
      await rejectsWith(c.wrap(Buffer.alloc(32), AAD), 'GATEWAY_PROTOCOL_ERR');
      assert.equal(s.counts.wrap - before, 1, `${code} is not retried`);
    }
    // No code of the gateway's (a proxy), or a route this gateway does not know: another try may help.
    // (A client each: three failed tries in a row count towards the circuit breaker.)
    s.failWith = 'NOT_FOUND_ERR';
    let before = s.counts.wrap;
    await rejectsWith(client({}, s).wrap(Buffer.alloc(32), AAD), 'GATEWAY_PROTOCOL_ERR');
    assert.equal(s.counts.wrap - before, 3, 'NOT_FOUND_ERR (unknown route) is retried');
    s.failWith = undefined;
    s.failStatus = 409;
    before = s.counts.wrap;
    await rejectsWith(client({}, s).wrap(Buffer.alloc(32), AAD), 'GATEWAY_PROTOCOL_ERR');
    assert.equal(s.counts.wrap - before, 3, 'a bare 409 is retried');
    s.failStatus = undefined;
  });

  it('sends the time it will still wait, within its deadline and the budget it was given', async () => {
    const s = await server();
    const c = client({ deadlineMs: 1500 }, s);
    await c.wrap(Buffer.alloc(32), AAD);
    await c.wrap(Buffer.alloc(32), AAD, { budgetMs: 400 });
    const [full, budget] = s.timeoutHeaders.map(Number);
    assert.ok(full !== undefined && full > 0 && full <= 1500 - 50, String(s.timeoutHeaders));
    assert.ok(budget !== undefined && budget > 0 && budget <= 400 - 50, String(s.timeoutHeaders));
  });

  it('retries a busy gateway only when its Retry-After fits in what is left of the deadline', async () => {
    const s = await server();
    const c = client({ deadlineMs: 1500, maxRetries: 2 }, s);
    await c.wrap(Buffer.alloc(32), AAD);
    s.failWith = 'OVERLOADED';
    s.retryAfter = '5';
    await rejectsWith(c.wrap(Buffer.alloc(32), AAD), 'GATEWAY_UNAVAILABLE');
    assert.equal(s.counts.wrap, 1 + 1, 'a 5 s Retry-After does not fit in 1.5 s: no retry');
    s.retryAfter = '0';
    await rejectsWith(c.wrap(Buffer.alloc(32), AAD), 'GATEWAY_UNAVAILABLE');
    assert.equal(s.counts.wrap, 2 + 3, 'Retry-After 0: MAX_RETRIES more tries');
    assert.equal(c.breakerStates()[s.url], 'closed', 'a busy gateway is up: its breaker stays closed');
    s.failWith = undefined;
    s.retryAfter = undefined;
  });

  it('answers GATEWAY_TIMEOUT inside its deadline when the gateway is slow', async () => {
    const s = await server();
    const c = client({ deadlineMs: 300 }, s);
    await c.wrap(Buffer.alloc(32), AAD);
    s.delayMs = 2000;
    await rejectsWith(c.wrap(Buffer.alloc(32), AAD), 'GATEWAY_TIMEOUT');
    s.delayMs = 0;
  });

  it('answers GATEWAY_UNAVAILABLE when the gateway is killed, and recovers when it is back', async () => {
    const s = await server();
    const c = client({ breaker: { failureThreshold: 3, openMs: 100 } }, s);
    const w = await c.wrap(Buffer.alloc(32, 3), AAD);
    await s.stop();
    await rejectsWith(c.unwrap(w.wrappedDek, AAD), 'GATEWAY_UNAVAILABLE');
    await s.listen();
    await new Promise((r) => setTimeout(r, 150));
    assert.deepEqual((await c.unwrap(w.wrappedDek, AAD)).dek, Buffer.alloc(32, 3));
  });

  it('fails over to the second URL and opens the breaker of the dead first one', async () => {
    const dead = await server();
    const deadUrl = dead.url;
    await dead.stop();
    const live = kp;
    const states: string[] = [];
    const c = client({
      urls: [deadUrl, live.url],
      tokenUrl: live.tokenUrl,
      breaker: { failureThreshold: 2, openMs: 60_000 },
      onBreaker: (url, state) => states.push(`${url === deadUrl ? 'dead' : 'live'}:${state}`),
    });
    const before = live.counts.wrap;
    for (let i = 0; i < 5; i++) await c.wrap(Buffer.alloc(32, i), AAD);
    assert.equal(live.counts.wrap - before, 5);
    assert.equal(c.breakerStates()[deadUrl], 'open');
    assert.deepEqual(states, ['dead:open']);
  });

  it('sends a shim report on the next calls until one is answered 2xx, then no more', async () => {
    const s = await server();
    const c = client({}, s);
    await c.wrap(Buffer.alloc(32, 1), AAD);
    c.reportOnNextCall('node=m1;version=0.1.0;apis=v2;cache=0;health=ok');
    s.failWith = 'KEY_ACTION_INVALID_STATE_ERR';
    await rejectsWith(c.wrap(Buffer.alloc(32, 1), AAD), 'KEY_ACTION_INVALID_STATE_ERR');
    s.failWith = undefined;
    await c.wrap(Buffer.alloc(32, 1), AAD);
    await c.wrap(Buffer.alloc(32, 1), AAD);
    assert.deepEqual(s.reportHeaders, [
      '',
      'node=m1;version=0.1.0;apis=v2;cache=0;health=ok',
      'node=m1;version=0.1.0;apis=v2;cache=0;health=ok',
      '',
    ]);
  });
});
