import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeShimReport, HEADERS } from '@keygate/shared/api';
import { systemRandom } from '@keygate/shared/crypto';
import type { FleetView } from './core/fleet/fleet-view.js';
import type { RunningGateway } from './main.js';
import {
  type CallResult,
  call,
  createGatewayFixture,
  type GatewayFixture,
  INSTANCE,
  OTHER_INSTANCE,
} from './testing/gateway-fixture.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';

const CLUSTER = 'spiffe://keygate/cluster/prod-eu-1';

/**
 * The fleet in a real gateway (SoftHSM2, mTLS, file store): a shim report on a wrap becomes the
 * node's record, a malformed one is counted and ignored (the wrap still succeeds), each key
 * operation is counted under the root-key version it used, and fleet.json is written beside the
 * key store at stop.
 */
describe('gateway: fleet notes on wrap, unwrap and rewrap', () => {
  let fx: GatewayFixture;
  let gw: RunningGateway;

  before(async () => {
    fx = await createGatewayFixture();
    const access = `access:
  clients:
    - identity: ${CLUSTER}
      instances: [${INSTANCE}, ${OTHER_INSTANCE}]
      roles: [wrap, unwrap, rewrap, keys:read]
    - identity: ops-admin
      instances: ['*']
      roles: [keys:admin, keys:read, fleet:read]
fleet:
  staleAfter: 1h
  flushInterval: 100ms`;
    gw = await startGatewayFromFile(fx.writeConfig('fleet', { access: false, extra: access }), {
      logDestination: captureLines().stream,
    });
  });
  after(async () => {
    await gw?.close();
    fx?.softhsm.cleanup();
  });

  const admin = (method: string, path: string, body?: unknown) =>
    call(gw.url, method, path, { client: fx.clients.admin, ca: fx.ca.certPem, instance: INSTANCE, body });
  const action = (keyId: string, act: string, body: unknown, headers: Record<string, string> = {}) =>
    call(gw.url, 'POST', `/api/v2/keys/${keyId}/actions/${act}`, {
      client: fx.clients.allowed,
      ca: fx.ca.certPem,
      instance: INSTANCE,
      body,
      headers,
    });
  const ok = (r: CallResult): CallResult => {
    assert.equal(r.status, 200, r.text);
    return r;
  };

  it('notes reports and uses per version, ignores malformed reports, and writes fleet.json', async () => {
    const made = await admin('POST', '/api/v2/keys', {
      metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
      resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'fleet-key' }],
    });
    assert.equal(made.status, 201, made.text);
    const keyId = String(made.json<{ resources: { id: string }[] }>().resources[0]?.id);
    const report = encodeShimReport({
      node: 'master-1',
      version: '0.1.0',
      keyId: `keygate/${INSTANCE}/${keyId}/x`,
      keyVersion: 'x',
      apis: ['v2'],
      cacheSize: 2,
      health: 'ok',
    });
    const dek = systemRandom(32).toString('base64');
    const w1 = ok(await action(keyId, 'wrap', { plaintext: dek }, { [HEADERS.shimReport]: report }));
    const v1 = w1.json<{ keyVersion: { id: string } }>().keyVersion.id;
    ok(await action(keyId, 'wrap', { plaintext: dek }, { [HEADERS.shimReport]: 'node=bad name;version=1' }));
    assert.equal((await admin('POST', `/api/v2/keys/${keyId}/actions/rotate`)).status, 204);
    const w2 = ok(await action(keyId, 'wrap', { plaintext: dek }));
    const v2 = w2.json<{ keyVersion: { id: string } }>().keyVersion.id;
    assert.notEqual(v1, v2);
    const old = w1.json<{ ciphertext: string }>().ciphertext;
    ok(await action(keyId, 'unwrap', { ciphertext: old }));
    ok(await action(keyId, 'rewrap', { ciphertext: old }));

    const view = await admin('GET', '/api/v2/keygate/fleet');
    assert.equal(view.status, 200, view.text);
    const v = view.json<FleetView>();
    assert.deepEqual(
      v.nodes.map((n) => [n.cluster, n.node, n.crk, n.cacheSize, n.health, n.stale]),
      [[CLUSTER, 'master-1', keyId, 2, 'ok', false]],
    );
    const versions = v.usage.clusters[CLUSTER]?.versions.filter((x) => x.crk === keyId) ?? [];
    const byVersion = Object.fromEntries(versions.map((x) => [x.version, [x.wrap, x.unwrap, x.rewrap]]));
    assert.deepEqual(byVersion, { [v1]: [2, 1, 0], [v2]: [1, 0, 1] });

    const metrics = (await admin('GET', '/metrics')).text
      .split('\n')
      .filter((l) => /^keygate_(fleet_|key_uses)/.test(l));
    for (const line of [
      'keygate_fleet_reports_total{outcome="malformed",component="gateway"} 1',
      'keygate_fleet_reports_total{outcome="ok",component="gateway"} 1',
      `keygate_key_uses_total{cluster="${CLUSTER}",op="wrap",component="gateway"} 3`,
      'keygate_fleet_nodes{state="fresh",component="gateway"} 1',
      'keygate_fleet_nodes{state="stale",component="gateway"} 0',
    ])
      assert.ok(metrics.includes(line), `${line} not in\n${metrics.join('\n')}`);

    // The cluster's own identity has no fleet:read.
    const denied = await call(gw.url, 'GET', '/api/v2/keygate/fleet', {
      client: fx.clients.allowed,
      ca: fx.ca.certPem,
    });
    assert.equal(denied.status, 403);

    await gw.close();
    const file = join(fx.softhsm.dir, 'fleet.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const saved = JSON.parse(readFileSync(file, 'utf8')) as { nodes: { node: string }[] };
    assert.deepEqual(
      saved.nodes.map((n) => n.node),
      ['master-1'],
    );
  });
});
