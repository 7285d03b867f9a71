import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { codeOfErrorCollection } from '@keygate/shared/api';
import { KmsClient } from '@keygate/shim';
import { DEV_NODE_NAME, type DevStack, startDevStack } from '#devstack/devstack.js';
import { GATEWAY_CLI } from '#devstack/paths.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { type KpSession, kpSession } from '../support/kp-http.js';

interface FleetNode {
  cluster: string;
  node: string;
  kmsKeyId?: string;
  keyVersion?: string;
  health: string;
  stale: boolean;
  shimVersion: string;
  apis: string[];
}
interface FleetAnswer {
  nodes: FleetNode[];
  usage: { clusters: Record<string, { wrap: number; unwrap: number }> };
}

/**
 * The fleet view end to end: the dev stack's gateway and shim as processes (SoftHSM2, mTLS, tokens).
 * The shim reports itself after its key_id refresh (every second here); the gateway shows it at
 * GET /api/v2/keygate/fleet to an identity with fleet:read, and `keygate-gateway fleet --json`
 * shows the same from the fleet.json the gateway writes.
 */
describe('e2e: the fleet view', { skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed' }, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-e2e-fleet-'));
  let stack: DevStack;
  let admin: KpSession;
  let cluster: KpSession;
  let keyId: string;

  before(async () => {
    stack = await startDevStack({
      home,
      gatewayPort: 0,
      healthzPort: 0,
      hsm: 'softhsm2',
      keyIdRefreshSeconds: 1,
    });
    const i = stack.info;
    const as = (certFile: string, keyFile: string, apiKeyFile: string) =>
      kpSession({
        url: i.gatewayUrl,
        caFile: i.caFile,
        certFile,
        keyFile,
        apiKeyFile,
        instance: i.instanceId,
      });
    admin = await as(i.adminCertFile, i.adminKeyFile, i.adminApiKeyFile);
    cluster = await as(i.clientCertFile, i.clientKeyFile, i.apiKeyFile);
    const kms = new KmsClient(i.socket);
    try {
      keyId = (await kms.status()).key_id;
    } finally {
      kms.close();
    }
  });

  after(async () => {
    admin?.close();
    cluster?.close();
    await stack?.stop();
  });

  /** Polls `read` until `ok` holds for its answer (the shim reports once per refresh). */
  async function until<T>(what: string, read: () => Promise<T> | T, ok: (t: T) => boolean): Promise<T> {
    const end = Date.now() + 30_000;
    let last: T | undefined;
    while (Date.now() < end) {
      last = await read();
      if (ok(last)) return last;
      await sleep(250);
    }
    assert.fail(`${what}: not seen within 30 s; last: ${JSON.stringify(last)}`);
  }

  const devNode = (a: FleetAnswer | undefined) =>
    a?.nodes.find((n) => n.cluster === 'dev-cluster' && n.node === DEV_NODE_NAME);

  it('GET /api/v2/keygate/fleet shows the shim’s node with the current key_id and health ok', async () => {
    const answer = await until(
      'the dev node in the API',
      async () => {
        const r = await admin.call('GET', '/api/v2/keygate/fleet');
        assert.equal(r.status, 200, JSON.stringify(r.body));
        return r.body as unknown as FleetAnswer;
      },
      (a) => devNode(a)?.kmsKeyId === keyId,
    );
    const n = devNode(answer);
    assert.equal(n?.health, 'ok');
    assert.equal(n?.stale, false);
    assert.equal(n?.shimVersion, '0.1.0');
    assert.deepEqual(n?.apis, ['v2', 'v1beta1']);
    assert.ok(keyId.endsWith(`/${n?.keyVersion}`));
    // The refresh wraps are counted for the cluster (the calling identity).
    assert.ok((answer.usage.clusters['dev-cluster']?.wrap ?? 0) > 0, JSON.stringify(answer.usage));
  });

  it('keygate-gateway fleet --json shows the same node, and the text form names it', async () => {
    const cli = (...args: string[]) =>
      execFileSync(process.execPath, [GATEWAY_CLI, 'fleet', '--config', stack.info.gatewayConfig, ...args], {
        encoding: 'utf8',
        env: { ...process.env, ...stack.prepared.env },
      });
    // fleet.json is written every fleet.flushInterval (5 s by default).
    const json = await until(
      'the dev node in fleet --json',
      () => JSON.parse(cli('--json')) as FleetAnswer,
      (a) => devNode(a)?.kmsKeyId === keyId,
    );
    assert.equal(devNode(json)?.health, 'ok');
    const text = cli();
    assert.match(text, /cluster dev-cluster: 1 node\(s\)/);
    assert.ok(text.includes(DEV_NODE_NAME) && text.includes(keyId), text);
    // With a staleness limit shorter than the flush interval's lag, the node reads as STALE.
    assert.match(cli('--stale-after', '1ms'), /STALE/);
  });

  it('refuses the fleet to an identity without fleet:read (the cluster’s own) with 403', async () => {
    const r = await cluster.call('GET', '/api/v2/keygate/fleet');
    assert.equal(r.status, 403);
    assert.equal(codeOfErrorCollection(r.body), 'FORBIDDEN_ERR');
  });
});
