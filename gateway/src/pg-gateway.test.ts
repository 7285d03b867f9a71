import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemRandom } from '@keygate/shared/crypto';
import type { RunningGateway } from './main.js';
import {
  type CallResult,
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

/**
 * Issue 16: two gateway replicas on one PostgreSQL and one SoftHSM2 token, over mutual TLS. A
 * key made through one is served by the other; a rotation, disable or destroy through one is
 * seen by the other within a second; a database restart is survived without a gateway restart,
 * and /readyz says what is wrong meanwhile.
 */
describe('gateway replicas on PostgreSQL', () => {
  let fx: GatewayFixture;
  let pg: TestPostgres;
  const gws: RunningGateway[] = [];

  before(async () => {
    fx = await createGatewayFixture();
    pg = await startTestPostgres({ fast: true });
    const store = postgresStoreYaml(pg, ['reconcileInterval: 1s']);
    for (const name of ['replica-a', 'replica-b']) {
      gws.push(
        await startGatewayFromFile(fx.writeConfig(name, { store }), {
          logDestination: captureLines().stream,
        }),
      );
    }
  });
  after(async () => {
    for (const g of gws) await g.close();
    await pg?.remove();
    fx?.softhsm.cleanup();
  });

  const replica = (i: number): RunningGateway => gws[i] as RunningGateway;
  const admin = (gw: RunningGateway, method: string, path: string, body?: unknown) =>
    call(gw.url, method, path, { client: fx.clients.admin, ca: fx.ca.certPem, instance: INSTANCE, body });
  const action = (gw: RunningGateway, keyId: string, act: string, body: unknown): Promise<CallResult> =>
    call(gw.url, 'POST', `/api/v2/keys/${keyId}/actions/${act}`, {
      client: fx.clients.allowed,
      ca: fx.ca.certPem,
      instance: INSTANCE,
      body,
    });
  const createKey = async (gw: RunningGateway, name: string): Promise<string> => {
    const r = await admin(gw, 'POST', '/api/v2/keys', {
      metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
      resources: [{ type: 'application/vnd.ibm.kms.key+json', name }],
    });
    assert.equal(r.status, 201, r.text);
    return String(r.json<{ resources: { id: string }[] }>().resources[0]?.id);
  };
  /** Polls `probe` until it holds; returns how long that took (fails after 5 s). */
  const within = async (what: string, probe: () => Promise<boolean>): Promise<number> => {
    const t0 = performance.now();
    while (!(await probe())) {
      assert.ok(performance.now() - t0 < 5000, `${what}: not seen after 5 s`);
      await sleep(20);
    }
    return performance.now() - t0;
  };

  it('a key made through one replica wraps on the other; a rotation through one is used by the other', async () => {
    const keyId = await createKey(replica(0), 'shared-by-replicas');
    const dek = systemRandom(32).toString('base64');
    const w = await action(replica(1), keyId, 'wrap', { plaintext: dek });
    assert.equal(w.status, 200, w.text);
    const { ciphertext, keyVersion } = w.json<{ ciphertext: string; keyVersion: { id: string } }>();
    const u = await action(replica(0), keyId, 'unwrap', { ciphertext });
    assert.equal(u.json().plaintext, dek);

    const r = await admin(replica(0), 'POST', `/api/v2/keys/${keyId}/actions/rotate`, {});
    assert.ok(r.status === 200 || r.status === 204, r.text);
    const ms = await within('rotation seen by replica b', async () => {
      const w2 = await action(replica(1), keyId, 'wrap', { plaintext: dek });
      return w2.json<{ keyVersion: { id: string } }>().keyVersion.id !== keyVersion.id;
    });
    console.log(`# rotation through replica a used by replica b after ${Math.round(ms)} ms`);
    const old = await action(replica(1), keyId, 'unwrap', { ciphertext });
    assert.equal(old.json().plaintext, dek);
  });

  it('disable and destroy through one replica stop wraps on the other within a second', async () => {
    const keyId = await createKey(replica(0), 'to-destroy');
    const dek = systemRandom(32).toString('base64');
    const w = await action(replica(1), keyId, 'wrap', { plaintext: dek });
    assert.equal(w.status, 200, w.text);
    const d = await admin(replica(0), 'POST', `/api/v2/keys/${keyId}/actions/disable`, {});
    assert.equal(d.status, 204, d.text);
    const disabledMs = await within('disable seen by replica b', async () => {
      const r = await action(replica(1), keyId, 'wrap', { plaintext: dek });
      return errorCode(r) === 'KEY_ACTION_INVALID_STATE_ERR';
    });
    const e = await admin(replica(0), 'POST', `/api/v2/keys/${keyId}/actions/enable`, {});
    assert.equal(e.status, 204, e.text);
    await within(
      'enable seen by replica b',
      async () => (await action(replica(1), keyId, 'wrap', { plaintext: dek })).status === 200,
    );
    const x = await admin(replica(0), 'DELETE', `/api/v2/keys/${keyId}`);
    assert.ok(x.status === 200 || x.status === 204, x.text);
    const destroyedMs = await within('destroy seen by replica b', async () => {
      const r = await action(replica(1), keyId, 'wrap', { plaintext: dek });
      return r.status === 410 || errorCode(r) === 'KEY_DELETED_ERR';
    });
    console.log(
      `# replica b refuses after: disable ${Math.round(disabledMs)} ms, destroy ${Math.round(destroyedMs)} ms`,
    );
    assert.ok(
      disabledMs < 2000 && destroyedMs < 2000,
      'changes reach the other replica within about a second',
    );
    const after = await action(replica(1), keyId, 'unwrap', { ciphertext: w.json().ciphertext });
    assert.equal(after.status, 410, after.text);
  });

  it('survives a database restart without a gateway restart; /readyz names the database meanwhile', async () => {
    const keyId = await createKey(replica(0), 'through-restart');
    await pg.stop('fast');
    try {
      const ready = await call(replica(1).url, 'GET', '/readyz', {
        client: fx.clients.allowed,
        ca: fx.ca.certPem,
      });
      // The first probe may still see the last good state; within a couple of seconds it must not.
      await within('readyz reports the database', async () => {
        const r = await call(replica(1).url, 'GET', '/readyz', {
          client: fx.clients.allowed,
          ca: fx.ca.certPem,
        });
        return r.status === 503 && /database/.test(r.text);
      });
      assert.ok(ready.status === 200 || ready.status === 503);
      const refused = await admin(replica(1), 'GET', `/api/v2/keys/${keyId}`);
      assert.equal(refused.status, 503, refused.text);
      assert.equal(errorCode(refused), 'STORE_UNAVAILABLE');
    } finally {
      await pg.start();
    }
    await within('both replicas ready again', async () => {
      for (const g of gws) {
        const r = await call(g.url, 'GET', '/readyz', { client: fx.clients.allowed, ca: fx.ca.certPem });
        if (r.status !== 200) return false;
      }
      return true;
    });
    const w = await action(replica(1), keyId, 'wrap', { plaintext: systemRandom(32).toString('base64') });
    assert.equal(w.status, 200, w.text);
  });
});
