import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditPage, AuditQuery, AuditReader } from '../core/audit/audit-search.js';
import type { RotationQueries, RotationStatus } from '../core/fleet/rotation-view.js';
import type { KeyRecord } from '../core/keys/key-store.js';
import { ADMIN_KEY, login, post, setupConsole } from '../testing/console-app-fixture.js';
import type { KeyVersionAdmin } from './ports.js';

describe('console pages (fakes)', () => {
  it('rotation: per-cluster convergence, old-version use, why it is not safe to disable; reloads every 5 s', async () => {
    let asked = '';
    const rotation: RotationQueries = {
      async status(instance, crk): Promise<RotationStatus> {
        asked = `${instance}/${crk}`;
        return {
          rotation: {
            instance,
            crk,
            fromVersion: 'v-old',
            toVersion: 'v-new',
            startedAt: '2026-03-01T09:00:00.000Z',
            startedBy: 'console:ops',
          },
          currentVersion: 'v-new',
          clusters: [
            {
              cluster: 'prod',
              nodes: [
                {
                  cluster: 'prod',
                  node: 'm1',
                  keyVersion: 'v-new',
                  converged: true,
                  stale: false,
                  lastSeen: '2026-03-01T09:59:00.000Z',
                },
                {
                  cluster: 'prod',
                  node: 'm2',
                  keyVersion: 'v-old',
                  converged: false,
                  stale: false,
                  lastSeen: '2026-03-01T09:59:00.000Z',
                },
              ],
              converged: false,
              newVersionSeen: true,
              oldVersionUse: [
                { version: 'v-old', wraps: 0, unwraps: 42, rewraps: 0, lastUsed: '2026-03-01T09:58:00.000Z' },
              ],
            },
          ],
          safeToDisable: false,
          reasons: ['cluster prod: node m2 still reports version v-old'],
        };
      },
    };
    const { app, keys } = setupConsole({ more: { rotation } });
    const k = await keys.create({ instance: 'inst-a', name: 'rot-key' });
    const { cookie } = await login(app, ADMIN_KEY);
    const page = await (
      await app.request(`/rotation?k=${encodeURIComponent(`inst-a/${k.id}`)}`, { headers: { cookie } })
    ).text();
    assert.equal(asked, `inst-a/${k.id}`);
    assert.match(page, /<meta http-equiv="refresh" content="5">/);
    assert.match(page, /Cluster <code>prod<\/code> <span class="badge warn">not converged<\/span>/);
    assert.match(page, /not yet safe to disable old versions/);
    assert.match(page, /node m2 still reports version v-old/);
    assert.match(page, /<td class="num">42<\/td>/);
    // Only the rotation page refreshes itself.
    const keysPage = await (await app.request('/keys', { headers: { cookie } })).text();
    assert.doesNotMatch(keysPage, /http-equiv="refresh"/);
  });

  it('rotation without RotationQueries says "not available"', async () => {
    const { app, keys } = setupConsole();
    await keys.create({ instance: 'inst-a', name: 'rot-key' });
    const { cookie } = await login(app, ADMIN_KEY);
    const page = await (await app.request('/rotation', { headers: { cookie } })).text();
    assert.match(page, /not available/);
  });

  it('disables an old version through the version port (never forced), audited with the version', async () => {
    const calls: string[] = [];
    const versions: KeyVersionAdmin = {
      async disableVersion(instance, id, version, o) {
        calls.push(`disable ${instance}/${id}/${version} force=${o.force}`);
        return {} as KeyRecord;
      },
      async enableVersion(instance, id, version) {
        calls.push(`enable ${instance}/${id}/${version}`);
        return {} as KeyRecord;
      },
    };
    const { app, keys, events } = setupConsole({ more: { versions } });
    const k = await keys.create({ instance: 'inst-a', name: 'v-key' });
    const old = k.versions[0]?.id ?? '';
    await keys.rotate('inst-a', k.id);
    const { cookie, csrf } = await login(app, ADMIN_KEY);
    const page = await (await app.request('/keys', { headers: { cookie } })).text();
    assert.ok(
      page.includes(`/keys/inst-a/${k.id}/versions/${old}/disable`),
      'a disable button for the old version',
    );
    const res = await post(app, `/keys/inst-a/${k.id}/versions/${old}/disable`, cookie, { csrf });
    assert.equal(res.status, 303);
    assert.deepEqual(calls, [`disable inst-a/${k.id}/${old} force=false`]);
    const last = events.at(-1);
    assert.equal(last?.operation, 'key.version.disable');
    assert.equal(last?.keyVersion, old);
    assert.equal(last?.outcome, 'success');
  });

  it('refuses an action before it runs when the audit log is unavailable', async () => {
    const { app, keys, auditState } = setupConsole();
    const { cookie, csrf } = await login(app, ADMIN_KEY);
    auditState.down = true;
    const res = await post(app, '/keys/create', cookie, { csrf, instance: 'inst-a', name: 'never' });
    assert.equal(res.status, 303);
    assert.equal((await keys.list('inst-a')).length, 0);
    auditState.down = false;
    const page = await (await app.request('/keys', { headers: { cookie } })).text();
    assert.match(page, /key\.create refused: .*\(AUDIT_UNAVAILABLE\)/);
  });

  it('audit: passes the search on, escapes what records hold, shows the chain status, names invalid fields', async () => {
    const queries: AuditQuery[] = [];
    const reader: AuditReader = {
      async search(q): Promise<AuditPage> {
        queries.push(q);
        return {
          hits: [
            {
              seq: 7,
              event: {
                time: '2026-03-01T09:00:00.000Z',
                requestId: 'r',
                subject: '<img src=x>',
                operation: 'key.rotate',
                outcome: 'success',
                instance: 'inst-a',
                keyId: 'k1',
                latencyMs: 1,
              },
            },
          ],
          more: true,
        };
      },
      async verify() {
        return {
          ok: false,
          checkedAt: '2026-03-01T10:00:00.000Z',
          records: 9,
          lastSeq: 9,
          problem: 'edited at f:3: x',
        };
      },
    };
    const { app } = setupConsole({ more: { auditReader: reader } });
    const { cookie } = await login(app, ADMIN_KEY);
    const q = 'search=1&operation=key.&identity=ops&from=2026-03-01T08:00&outcome=success&key=%00bad&page=1';
    const page = await (await app.request(`/audit?${q}`, { headers: { cookie } })).text();
    assert.equal(queries.length, 1);
    assert.equal(queries[0]?.operation, 'key.');
    assert.equal(queries[0]?.identity, 'ops');
    assert.equal(queries[0]?.outcome, 'success');
    assert.equal(queries[0]?.page, 1);
    assert.equal(queries[0]?.keyId, undefined);
    assert.equal(queries[0]?.from?.toISOString(), '2026-03-01T08:00:00.000Z');
    assert.match(page, /Ignored invalid fields: key\./);
    assert.match(page, /&lt;img src=x&gt;/);
    assert.doesNotMatch(page, /<img src=x>/);
    assert.match(page, /chain broken/);
    assert.match(page, /edited at f:3: x/);
    assert.match(page, /Older →/);
    assert.match(page, /← Newer/);
  });

  it('status: HSM and store readiness with reasons, versions and replica', async () => {
    const { app } = setupConsole({
      more: {
        readiness: () => ({
          hsm: { backend: 'pkcs11', ready: false, reasons: ['token not present'] },
          store: { ready: true, reasons: [] },
        }),
      },
    });
    const { cookie } = await login(app, ADMIN_KEY);
    const page = await (await app.request('/status', { headers: { cookie } })).text();
    assert.match(page, /HSM<\/h2>\s*<p><span class="badge bad">not ready<\/span>/);
    assert.match(page, /token not present/);
    assert.match(page, /backend pkcs11/);
    assert.match(page, /<td>r1<\/td>/);
  });
});
