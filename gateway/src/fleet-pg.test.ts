import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeShimReport, HEADERS } from '@keygate/shared/api';
import { systemRandom } from '@keygate/shared/crypto';
import { createLogger } from '@keygate/shared/log';
import type { FleetView } from './core/fleet/fleet-view.js';
import { runFleetCommand } from './fleet-command.js';
import type { RunningGateway } from './main.js';
import {
  call,
  createGatewayFixture,
  type GatewayFixture,
  INSTANCE,
  OTHER_INSTANCE,
  postgresStoreYaml,
} from './testing/gateway-fixture.js';
import { startTestPostgres, type TestPostgres } from './testing/postgres.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';

const CLUSTER = 'spiffe://keygate/cluster/prod-eu-1';

/**
 * The fleet on PostgreSQL with two gateway replicas (SoftHSM2, mTLS): a report and wraps heard by
 * one replica are seen through the other's API once flushed, and by `keygate-gateway fleet`.
 */
describe('fleet view on PostgreSQL replicas', () => {
  let fx: GatewayFixture;
  let pg: TestPostgres;
  let config: string;
  const gws: RunningGateway[] = [];

  before(async () => {
    fx = await createGatewayFixture();
    pg = await startTestPostgres({ fast: true });
    const access = `access:
  clients:
    - identity: ${CLUSTER}
      instances: [${INSTANCE}, ${OTHER_INSTANCE}]
      roles: [wrap, unwrap, rewrap, keys:read]
    - identity: ops-admin
      instances: ['*']
      roles: [keys:admin, keys:read, fleet:read]
fleet:
  flushInterval: 200ms`;
    config = fx.writeConfig('fleet-pg', { access: false, extra: access, store: postgresStoreYaml(pg) });
    for (let i = 0; i < 2; i++)
      gws.push(await startGatewayFromFile(config, { logDestination: captureLines().stream }));
  });
  after(async () => {
    for (const g of gws) await g.close();
    pg?.remove();
    fx?.softhsm.cleanup();
  });

  const gw = (i: number) => gws[i] as RunningGateway;

  it('a report and wraps heard by one replica show through the other and the CLI', async () => {
    const made = await call(gw(0).url, 'POST', '/api/v2/keys', {
      client: fx.clients.admin,
      ca: fx.ca.certPem,
      instance: INSTANCE,
      body: {
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'fleet-pg' }],
      },
    });
    assert.equal(made.status, 201, made.text);
    const keyId = String(made.json<{ resources: { id: string }[] }>().resources[0]?.id);
    const report = encodeShimReport({
      node: 'master-a',
      version: '0.1.0',
      apis: ['v2'],
      cacheSize: 0,
      health: 'ok',
    });
    for (let i = 0; i < 3; i++) {
      const w = await call(gw(0).url, 'POST', `/api/v2/keys/${keyId}/actions/wrap`, {
        client: fx.clients.allowed,
        ca: fx.ca.certPem,
        instance: INSTANCE,
        body: { plaintext: systemRandom(32).toString('base64') },
        headers: { [HEADERS.shimReport]: report },
      });
      assert.equal(w.status, 200, w.text);
    }
    let view: FleetView | undefined;
    // The replica flushes every 200 ms: the node and the three wraps may land in different flushes.
    for (let t = 0; t < 50 && (view?.nodes.length !== 1 || view.usage.clusters[CLUSTER]?.wrap !== 3); t++) {
      await sleep(100);
      const r = await call(gw(1).url, 'GET', '/api/v2/keygate/fleet', {
        client: fx.clients.admin,
        ca: fx.ca.certPem,
      });
      assert.equal(r.status, 200, r.text);
      view = r.json<FleetView>();
    }
    assert.deepEqual(
      view?.nodes.map((n) => [n.cluster, n.node, n.crk]),
      [[CLUSTER, 'master-a', keyId]],
    );
    assert.equal(view?.usage.clusters[CLUSTER]?.wrap, 3);

    const out: string[] = [];
    const logger = createLogger({ level: 'silent', name: 'test' });
    const code = await runFleetCommand(
      ['--config', config, '--json'],
      (l) => out.push(l),
      () => undefined,
      logger,
    );
    assert.equal(code, 0);
    const cli = JSON.parse(out.join('\n')) as FleetView;
    assert.deepEqual(
      cli.nodes.map((n) => n.node),
      ['master-a'],
    );
    assert.equal(cli.usage.clusters[CLUSTER]?.wrap, 3);
  });
});
