import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { systemRandom } from '@keygate/shared/crypto';
import { loadGatewayConfig } from './config.js';
import type { AuditEvent, AuditSink } from './core/audit/audit-event.js';
import { startGateway } from './main.js';
import { FakeHsm } from './testing/fake-hsm.js';
import { call, createGatewayFixture, type GatewayFixture, INSTANCE } from './testing/gateway-fixture.js';
import { MemoryKeyStore } from './testing/memory-key-store.js';
import { captureLines } from './testing/softhsm.js';

describe('startGateway(config, deps)', () => {
  let fx: GatewayFixture | undefined;
  after(() => fx?.softhsm.cleanup());

  it('uses the HSM, store, clock and audit sink it is given instead of building them, and sizes the thread pool', async () => {
    fx = await createGatewayFixture();
    const storeFile = join(fx.softhsm.dir, 'never-made.json');
    // Built from the config, this HSM would fail: the PIN's environment variable is not set.
    const config = loadGatewayConfig(fx.writeConfig('injected', { pinEnv: 'KG_UNSET_PIN', storeFile }));
    const at = new Date('2031-02-03T04:05:06.000Z');
    const events: AuditEvent[] = [];
    const audit: AuditSink = {
      assertAvailable() {},
      async append(e) {
        events.push(e);
      },
      async close() {},
    };
    const hsm = new FakeHsm(systemRandom);
    const store = new MemoryKeyStore();
    const poolBefore = process.env.UV_THREADPOOL_SIZE;
    delete process.env.UV_THREADPOOL_SIZE;
    const gw = await startGateway(config, {
      hsm,
      store,
      audit,
      clock: { now: () => at },
      env: {},
      logDestination: captureLines().stream,
    });
    try {
      // The pool size is set where the gateway starts: 4 PKCS#11 sessions, room for twice
      // maxHungCalls (default: sessions) calls left hanging, and 4 for the rest.
      assert.equal(process.env.UV_THREADPOOL_SIZE, '16');
      assert.equal(gw.runtime.hsm, hsm);
      const ca = fx.ca.certPem;
      const created = await call(gw.url, 'POST', '/api/v2/keys', {
        client: fx.clients.admin,
        ca,
        instance: INSTANCE,
        body: {
          metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
          resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'injected' }],
        },
      });
      assert.equal(created.status, 201, created.text);
      const [record] = await store.list(INSTANCE);
      assert.equal(record?.name, 'injected');
      assert.equal(record?.creationDate, at.toISOString());
      const wrapped = await call(gw.url, 'POST', `/api/v2/keys/${record.id}/actions/wrap`, {
        client: fx.clients.allowed,
        ca,
        instance: INSTANCE,
        body: {},
      });
      assert.equal(wrapped.status, 200, wrapped.text);
      assert.deepEqual(
        events.map((e) => [e.operation, e.outcome, e.time]),
        [
          ['key.create', 'success', at.toISOString()],
          ['wrap', 'success', at.toISOString()],
        ],
      );
      assert.equal(existsSync(storeFile), false);
    } finally {
      await gw.close();
      if (poolBefore === undefined) delete process.env.UV_THREADPOOL_SIZE;
      else process.env.UV_THREADPOOL_SIZE = poolBefore;
    }
  });
});
