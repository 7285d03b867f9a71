import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RunningGateway } from './main.js';
import {
  type CallResult,
  call,
  createGatewayFixture,
  errorCode,
  type GatewayFixture,
  INSTANCE,
} from './testing/gateway-fixture.js';
import { waitFor } from './testing/load.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';

/**
 * Issue 13 item 6: a key store that is missing, empty, truncated or unparsable makes /readyz
 * not ready from the start (with the reason), and key operations answer 503 STORE_UNAVAILABLE,
 * never 404 KEY_NOT_FOUND_ERR (which shims would take as "the key is gone"). Real gateway,
 * SoftHSM2, mutual TLS.
 */
describe('gateway: readiness tells the truth about the key store', () => {
  let fx: GatewayFixture;
  const started: RunningGateway[] = [];

  before(async () => {
    fx = await createGatewayFixture();
  });
  after(async () => {
    for (const g of started) await g.close();
    fx?.softhsm.cleanup();
  });

  const storeFile = (name: string) => join(fx.softhsm.dir, `${name}.json`);
  const start = async (name: string, createIfMissing = false): Promise<RunningGateway> => {
    const config = fx.writeConfig(name, { storeFile: storeFile(name), createIfMissing });
    const gw = await startGatewayFromFile(config, { logDestination: captureLines().stream });
    started.push(gw);
    return gw;
  };
  const get = (gw: RunningGateway, path: string) =>
    call(gw.url, 'GET', path, { client: fx.clients.allowed, ca: fx.ca.certPem });
  const wrap = (gw: RunningGateway): Promise<CallResult> =>
    call(gw.url, 'POST', '/api/v2/keys/some-key/actions/wrap', {
      client: fx.clients.allowed,
      ca: fx.ca.certPem,
      instance: INSTANCE,
      body: {},
    });

  for (const [label, content] of [
    ['empty', ''],
    ['truncated', '{"format":1,"generation":3,"keys":[{"instance":"inst-a","id":"k'],
    ['unparsable', 'format: 1\nthis is not json\n'],
    ['not a key store', '{"hello":"world"}\n'],
  ] as const) {
    it(`store file ${label}: not ready from the start with the reason; 503 STORE_UNAVAILABLE; ready once fixed`, async () => {
      const name = `store-${label.replace(/ /g, '-')}`;
      writeFileSync(storeFile(name), content);
      const gw = await start(name);
      const ready = await get(gw, '/readyz');
      assert.equal(ready.status, 503, ready.text);
      const body = ready.json<{ store: { ready: boolean; reasons: string[] } }>();
      assert.equal(body.store.ready, false);
      assert.match(body.store.reasons.join(' '), new RegExp(`${name}\\.json`));
      const w = await wrap(gw);
      assert.equal(w.status, 503, w.text);
      assert.equal(errorCode(w), 'STORE_UNAVAILABLE');
      // The operator puts a good file back: readiness follows without a restart.
      writeFileSync(storeFile(name), '{"format":1,"generation":1,"keys":[]}\n');
      await waitFor(async () => (await get(gw, '/readyz')).status === 200, 'ready after the fix');
      assert.equal(errorCode(await wrap(gw)), 'KEY_NOT_FOUND_ERR');
    });
  }

  it('a missing store file is an error unless the gateway is told to create it', async () => {
    const gw = await start('store-missing');
    const ready = await get(gw, '/readyz');
    assert.equal(ready.status, 503, ready.text);
    assert.match(ready.text, /does not exist/);
    const w = await wrap(gw);
    assert.equal(w.status, 503, w.text);
    assert.equal(errorCode(w), 'STORE_UNAVAILABLE');
    assert.equal(existsSync(storeFile('store-missing')), false, 'the gateway created the store uninvited');

    const created = await start('store-created', true);
    assert.equal((await get(created, '/readyz')).status, 200);
    assert.deepEqual(JSON.parse(readFileSync(storeFile('store-created'), 'utf8')).keys, []);
  });

  it('a store file that disappears while serving: not ready and 503, never KEY_NOT_FOUND_ERR', async () => {
    const gw = await start('store-vanishes', true);
    assert.equal((await get(gw, '/readyz')).status, 200);
    rmSync(storeFile('store-vanishes'));
    await waitFor(async () => (await wrap(gw)).status === 503, 'a 503 after the store vanished');
    assert.equal(errorCode(await wrap(gw)), 'STORE_UNAVAILABLE');
    assert.equal((await get(gw, '/readyz')).status, 503);
  });
});
