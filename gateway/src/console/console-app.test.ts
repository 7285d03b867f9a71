import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyState } from '@keygate/shared/api';
import { seededRandom } from '@keygate/shared/crypto';
import { createLogger } from '@keygate/shared/log';
import { MemoryFleetStore } from '../adapters/fleet/memory-fleet-store.js';
import type { AuditEvent, AuditSink } from '../core/audit/audit-event.js';
import { hashApiKey } from '../core/auth/api-key.js';
import { IdentityDirectory } from '../core/auth/identity-directory.js';
import { createKeyService } from '../core/keys/key-service.js';
import { FakeHsm } from '../testing/fake-hsm.js';
import { MemoryKeyStore } from '../testing/memory-key-store.js';
import { CONSOLE_CSP, createConsoleApp } from './console-app.js';

const ADMIN_KEY = 'kg_console-admin-key-for-tests';
const READER_KEY = 'kg_console-reader-key-for-tests';
const CLUSTER_KEY = 'kg_console-cluster-key-for-tests';

/** The console app on fakes (unit level: the browser suite runs it on the real stack). */
function setup(opts: { idleMs?: number } = {}) {
  const random = seededRandom('console');
  let now = Date.parse('2026-03-01T10:00:00Z');
  const clock = { now: () => new Date(now) };
  const keys = createKeyService({ hsm: new FakeHsm(random), store: new MemoryKeyStore(), clock, random });
  const events: AuditEvent[] = [];
  const audit: AuditSink = {
    assertAvailable: () => undefined,
    append: async (e) => {
      events.push(e);
    },
    close: async () => undefined,
  };
  const identities = new IdentityDirectory([
    {
      name: 'ops',
      apiKeyHashes: [hashApiKey(ADMIN_KEY)],
      certIdentities: ['spiffe://test/ops'],
      roles: { '*': ['fleet:read'], 'inst-a': ['keys:admin', 'keys:read'] },
    },
    {
      name: 'viewer',
      apiKeyHashes: [hashApiKey(READER_KEY)],
      certIdentities: ['spiffe://test/viewer'],
      roles: { '*': ['fleet:read'], 'inst-a': ['keys:read'] },
    },
    {
      name: 'cluster-1',
      apiKeyHashes: [hashApiKey(CLUSTER_KEY)],
      certIdentities: ['spiffe://test/c1'],
      roles: { 'inst-a': ['wrap', 'unwrap'] },
    },
  ]);
  const fleet = new MemoryFleetStore({ now: () => new Date(now) });
  const { app } = createConsoleApp({
    keys,
    identities,
    audit,
    fleet,
    readiness: () => ({
      hsm: { backend: 'software', ready: true, reasons: [] },
      store: { ready: true, reasons: [] },
    }),
    info: { version: '0.1.0', replica: 'r1', store: 'memory', audit: 'memory' },
    limits: {
      idleTimeoutMs: opts.idleMs ?? 60_000,
      sessionTtlMs: 3_600_000,
      maxFailedLogins: 3,
      loginLockoutMs: 60_000,
    },
    clock,
    logger: createLogger({ level: 'silent', name: 'test' }),
  });
  const advance = (ms: number) => {
    now += ms;
  };
  return { app, keys, events, fleet, advance };
}

type App = ReturnType<typeof setup>['app'];

async function login(app: App, apikey: string): Promise<{ cookie: string; csrf: string }> {
  const res = await app.request('/login', { method: 'POST', body: new URLSearchParams({ apikey }) });
  assert.equal(res.status, 303);
  const set = res.headers.get('set-cookie') ?? '';
  assert.match(set, /^__Host-keygate-session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Strict$/);
  const cookie = set.split(';')[0] ?? '';
  const page = await (await app.request('/keys', { headers: { cookie } })).text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1];
  assert.ok(csrf, 'the keys page carries a CSRF field');
  return { cookie, csrf };
}

function post(
  app: App,
  path: string,
  cookie: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
) {
  return app.request(path, {
    method: 'POST',
    body: new URLSearchParams(fields),
    headers: { cookie, ...headers },
  });
}

describe('console app', () => {
  it('sends the security headers on every answer, login page included', async () => {
    const { app } = setup();
    const res = await app.request('/login');
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-security-policy'), CONSOLE_CSP);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(res.headers.get('referrer-policy'), 'same-origin');
    const body = await res.text();
    assert.match(body, /<label for="apikey">/);
    assert.doesNotMatch(body, /<script/i);
  });

  it('logs in with an admin API key, creates, rotates and destroys a key with typed confirmation, all audited', async () => {
    const { app, keys, events } = setup();
    const { cookie, csrf } = await login(app, ADMIN_KEY);
    let res = await post(app, '/keys/create', cookie, { csrf, instance: 'inst-a', name: 'payments' });
    assert.equal(res.status, 303);
    const [key] = await keys.list('inst-a');
    assert.ok(key);
    res = await post(app, `/keys/inst-a/${key.id}/rotate`, cookie, { csrf });
    assert.equal((await keys.get('inst-a', key.id)).versions.length, 2);
    // The wrong name: refused, key untouched.
    res = await post(app, `/keys/inst-a/${key.id}/destroy`, cookie, { csrf, confirm: 'payment' });
    assert.equal(res.status, 303);
    assert.equal((await keys.get('inst-a', key.id)).state, KeyState.ACTIVE);
    const page = await (await app.request('/keys', { headers: { cookie } })).text();
    assert.match(
      page,
      /key\.destroy refused: A field of the request has an invalid value\. \(INVALID_FIELD_ERR\)/,
    );
    res = await post(app, `/keys/inst-a/${key.id}/destroy`, cookie, { csrf, confirm: 'payments' });
    assert.equal((await keys.get('inst-a', key.id)).state, KeyState.DESTROYED);
    const ops = events.map((e) => `${e.operation}:${e.outcome}:${e.subject}`);
    assert.deepEqual(ops, [
      'console.login:success:console:ops',
      'key.create:success:console:ops',
      'key.rotate:success:console:ops',
      'key.destroy:failure:console:ops',
      'key.destroy:success:console:ops',
    ]);
    assert.ok(
      events.every((e) => !JSON.stringify(e).includes(ADMIN_KEY)),
      'no API key in the audit',
    );
  });

  it('refuses a wrong API key, an identity without fleet:read, and locks the address after repeated failures', async () => {
    const { app, events } = setup();
    let res = await app.request('/login', {
      method: 'POST',
      body: new URLSearchParams({ apikey: 'kg_wrong' }),
    });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('set-cookie'), null);
    res = await app.request('/login', { method: 'POST', body: new URLSearchParams({ apikey: CLUSTER_KEY }) });
    assert.equal(res.status, 403);
    res = await app.request('/login', { method: 'POST', body: new URLSearchParams({ apikey: 'kg_wrong2' }) });
    assert.equal(res.status, 401);
    res = await app.request('/login', { method: 'POST', body: new URLSearchParams({ apikey: ADMIN_KEY }) });
    assert.equal(res.status, 429, 'locked even for the right key once the limit is reached');
    assert.equal(res.headers.get('x-keygate-error'), 'CONSOLE_LOGIN_LOCKED');
    assert.deepEqual(
      events.map((e) => `${e.operation}:${e.outcome}:${e.errorCode}`),
      [
        'console.login:denied:AUTH_APIKEY_INVALID',
        'console.login:denied:FORBIDDEN_ERR',
        'console.login:denied:AUTH_APIKEY_INVALID',
        'console.login:denied:CONSOLE_LOGIN_LOCKED',
      ],
    );
  });

  it('refuses a POST without the CSRF token, with a wrong one, and from a foreign origin', async () => {
    const { app, keys } = setup();
    const { cookie, csrf } = await login(app, ADMIN_KEY);
    let res = await post(app, '/keys/create', cookie, { instance: 'inst-a', name: 'nope-1' });
    assert.equal(res.status, 403);
    assert.equal(res.headers.get('x-keygate-error'), 'CONSOLE_CSRF_REFUSED');
    res = await post(app, '/keys/create', cookie, { csrf: `${csrf}x`, instance: 'inst-a', name: 'nope-2' });
    assert.equal(res.status, 403);
    res = await post(
      app,
      '/keys/create',
      cookie,
      { csrf, instance: 'inst-a', name: 'nope-3' },
      { origin: 'https://evil.example', host: 'console.example' },
    );
    assert.equal(res.status, 403);
    res = await post(
      app,
      '/keys/create',
      cookie,
      { csrf, instance: 'inst-a', name: 'nope-4' },
      { 'sec-fetch-site': 'cross-site' },
    );
    assert.equal(res.status, 403);
    assert.equal((await keys.list('inst-a')).length, 0);
  });

  it('refuses a form larger than 16 KiB before reading it', async () => {
    const { app } = setup();
    const res = await app.request('/login', {
      method: 'POST',
      body: new URLSearchParams({ apikey: 'x'.repeat(20_000) }),
    });
    assert.equal(res.status, 413);
    assert.equal(res.headers.get('x-keygate-error'), 'BODY_TOO_LARGE_ERR');
  });

  it('ends a session after the idle timeout and after logout', async () => {
    const { app, advance } = setup({ idleMs: 10_000 });
    const a = await login(app, ADMIN_KEY);
    advance(11_000);
    let res = await app.request('/keys', { headers: { cookie: a.cookie } });
    assert.equal(res.status, 401);
    assert.equal(res.headers.get('x-keygate-error'), 'CONSOLE_SESSION_EXPIRED');
    const b = await login(app, ADMIN_KEY);
    res = await post(app, '/logout', b.cookie, { csrf: b.csrf });
    assert.equal(res.status, 303);
    res = await app.request('/keys', { headers: { cookie: b.cookie } });
    assert.equal(res.status, 401);
    res = await app.request('/keys');
    assert.equal(res.status, 303, 'no cookie at all: to the login page');
  });

  it('lets a keys:read identity look but not act', async () => {
    const { app, keys, events } = setup();
    const created = await keys.create({ instance: 'inst-a', name: 'ro-key' });
    const { cookie, csrf } = await login(app, READER_KEY);
    const page = await (await app.request('/keys', { headers: { cookie } })).text();
    assert.match(page, /ro-key/);
    assert.doesNotMatch(page, /action="\/keys\/create"/);
    await post(app, `/keys/inst-a/${created.id}/rotate`, cookie, { csrf });
    assert.equal((await keys.get('inst-a', created.id)).versions.length, 1);
    assert.equal(events.at(-1)?.errorCode, 'FORBIDDEN_ERR');
    assert.equal(events.at(-1)?.outcome, 'denied');
  });

  it('shows clusters and nodes from the fleet store, stale ones flagged, with SVG charts; escapes what shims report', async () => {
    const { app, fleet, advance } = setup();
    const base = {
      instance: 'inst-a',
      crk: 'k1',
      shimVersion: '0.1.0',
      apis: ['v2'],
      cacheSize: 3,
      replica: 'r1',
    };
    fleet.noteNode({
      ...base,
      cluster: 'prod',
      node: 'master-1',
      health: 'ok',
      keyVersion: 'v1',
      lastSeen: new Date(Date.parse('2026-03-01T09:50:00Z')).toISOString(),
    });
    fleet.noteNode({
      ...base,
      cluster: 'prod',
      node: '<b>m2</b>',
      health: 'ok',
      keyVersion: 'v1',
      lastSeen: '2026-03-01T10:00:00.000Z',
    });
    fleet.noteUse({
      cluster: 'prod',
      instance: 'inst-a',
      crk: 'k1',
      version: 'v1',
      op: 'wrap',
      at: new Date('2026-03-01T09:58:00Z'),
    });
    advance(1000);
    const { cookie } = await login(app, ADMIN_KEY);
    const page = await (await app.request('/clusters', { headers: { cookie } })).text();
    assert.match(page, /Cluster <code>prod<\/code>/);
    assert.match(page, /master-1/);
    assert.match(page, /&lt;b&gt;m2&lt;\/b&gt;/);
    assert.doesNotMatch(page, /<b>m2<\/b>/);
    assert.match(page, /1 stale/);
    assert.match(page, /<svg class="chart"[^>]*role="img"/);
  });
});
