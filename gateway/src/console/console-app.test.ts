import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyState } from '@keygate/shared/api';
import {
  ADMIN_KEY,
  CLUSTER_KEY,
  login,
  post,
  READER_KEY,
  setupConsole,
} from '../testing/console-app-fixture.js';
import { CONSOLE_CSP } from './console-app.js';

describe('console app', () => {
  it('sends the security headers on every answer, login page included', async () => {
    const { app } = setupConsole();
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
    const { app, keys, events } = setupConsole();
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
    const { app, events } = setupConsole();
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
    const { app, keys } = setupConsole();
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

  it('answers only to its own host names: a DNS-rebound request is refused before login', async () => {
    const { app } = setupConsole();
    for (const path of ['https://evil.example/login', 'https://evil.example/keys']) {
      const res = await app.request(path);
      assert.equal(res.status, 421, path);
      assert.equal(res.headers.get('x-keygate-error'), 'CONSOLE_HOST_REFUSED');
    }
    const res = await app.request('https://evil.example/login', {
      method: 'POST',
      body: new URLSearchParams({ apikey: ADMIN_KEY }),
    });
    assert.equal(res.status, 421);
    assert.equal(res.headers.get('set-cookie'), null, 'no session for a foreign host');
    assert.equal((await app.request('https://localhost/login')).status, 200);
  });

  it('refuses a form larger than 16 KiB before reading it', async () => {
    const { app } = setupConsole();
    const res = await app.request('/login', {
      method: 'POST',
      body: new URLSearchParams({ apikey: 'x'.repeat(20_000) }),
    });
    assert.equal(res.status, 413);
    assert.equal(res.headers.get('x-keygate-error'), 'BODY_TOO_LARGE_ERR');
  });

  it('ends a session after the idle timeout and after logout', async () => {
    const { app, advance } = setupConsole({ idleMs: 10_000 });
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
    const { app, keys, events } = setupConsole();
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
    const { app, fleet, advance } = setupConsole();
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
