import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KmsClient, loadShimSettings } from '@keygate/shim';
import { parse } from 'yaml';
import { type DevStack, startDevStack } from '#devstack/devstack.js';
import { startShimProcess, waitHealthy } from '#devstack/launch.js';
import { GATEWAY_CLI, REPO_ROOT } from '#devstack/paths.js';
import { type Service, startService } from '#devstack/processes.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { readAuditRecords } from '../support/e2e-helpers.js';
import { kpSession } from '../support/kp-http.js';

/**
 * Onboarding a second cluster with `keygate-gateway clusters add` against the running dev stack
 * (gateway process on SoftHSM2, token mode with identities in the config, file store): the bundle
 * starts a second shim that does real KMS v2 Encrypt/Decrypt over gRPC through the gateway, and
 * `clusters remove` revokes it while the gateway keeps running: its next gateway call is refused,
 * the dev cluster's shim keeps working.
 */
describe('e2e: cluster onboarding in one command (clusters add, bundle, remove)', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-onboard-'));
  const bundle = join(home, 'bundle-second');
  let stack: DevStack;
  const services: Service[] = [];
  const clients: KmsClient[] = [];

  /** Runs the real gateway CLI to its end. */
  async function cli(...args: string[]): Promise<{ code: number | string; out: string }> {
    const s = startService(`cli-${args[1] ?? args[0]}`, process.execPath, [GATEWAY_CLI, ...args], {
      env: stack.prepared.env,
    });
    const code = await s.exited;
    return { code, out: s.lines.join('\n') };
  }
  const config = () => ['--config', stack.prepared.gatewayConfig];

  /** The bundle's kmsplugin-config.yaml with /etc/keygate/shim and the socket moved to the test folder. */
  function localShimConfig(socket: string): string {
    const text = readFileSync(join(bundle, 'kmsplugin-config.yaml'), 'utf8')
      .replaceAll('/etc/keygate/shim/', `${bundle}/`)
      .replace('"/var/run/keygate/kms.sock"', JSON.stringify(socket))
      .replace('HEALTHZ_PORT: "20358"', 'HEALTHZ_PORT: "0"')
      // Every Encrypt wraps a fresh DEK: each one is a gateway call made with the cluster's token.
      .replace('NEW_DEK: "false"', 'NEW_DEK: "true"');
    const file = join(home, 'second-kmsplugin-config.yaml');
    writeFileSync(file, text, { mode: 0o600 });
    return file;
  }

  before(async () => {
    stack = await startDevStack({ home, gatewayPort: 0, healthzPort: 0, hsm: 'softhsm2' });
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const s of services) await s.stop();
    await stack?.stop();
  });

  it('clusters add writes the bundle (modes, YAML the shim loads as is) and prints no key', async () => {
    const p = stack.prepared;
    const add = await cli(
      'clusters',
      'add',
      'second',
      ...config(),
      '--instance',
      p.instanceId,
      '--key',
      p.crkId,
      '--gateway-url',
      stack.info.gatewayUrl,
      '--out',
      bundle,
    );
    assert.equal(add.code, 0, add.out);
    const apiKey = readFileSync(join(bundle, 'api-key'), 'utf8').trim();
    assert.match(apiKey, /^kg_[A-Za-z0-9_-]{43}$/);
    assert.ok(!add.out.includes(apiKey), 'the API key is never printed');
    const mode = (f: string) => statSync(join(bundle, f)).mode & 0o777;
    assert.deepEqual(readdirSync(bundle).sort(), [
      'README.txt',
      'api-key',
      'ca.pem',
      'client-key.pem',
      'client.pem',
      'encryption-config.yaml',
      'keygate-shim.yaml',
      'kmsplugin-config.yaml',
    ]);
    for (const f of ['api-key', 'client-key.pem', 'kmsplugin-config.yaml']) assert.equal(mode(f), 0o600, f);
    for (const f of ['ca.pem', 'client.pem', 'encryption-config.yaml', 'keygate-shim.yaml', 'README.txt'])
      assert.equal(mode(f), 0o644, f);

    // Every YAML parses; the manifest and EncryptionConfiguration agree on the socket folder.
    const enc = parse(readFileSync(join(bundle, 'encryption-config.yaml'), 'utf8'));
    assert.equal(enc.resources[0].providers[0].kms.endpoint, 'unix:///var/run/keygate/kms.sock');
    const pod = parse(readFileSync(join(bundle, 'keygate-shim.yaml'), 'utf8'));
    assert.deepEqual(pod.spec.containers[0].args, [
      'serve',
      '--config',
      '/etc/keygate/shim/kmsplugin-config.yaml',
    ]);
    assert.ok(
      pod.spec.volumes.some((v: { hostPath?: { path: string } }) => v.hostPath?.path === '/var/run/keygate'),
    );
    // The same pod settings as the reference manifest infra/shim/static-pod.yaml (which mounts the
    // same host folder and keeps the TLS files in tls/); only the config layout differs.
    const infra = parse(readFileSync(join(REPO_ROOT, 'infra/shim/static-pod.yaml'), 'utf8'));
    const ref = infra.spec.containers[0];
    const got = pod.spec.containers[0];
    for (const k of [
      'image',
      'args',
      'env',
      'securityContext',
      'resources',
      'startupProbe',
      'livenessProbe',
      'readinessProbe',
      'volumeMounts',
    ])
      assert.deepEqual(got[k], ref[k], k);
    const { containers: _a, ...podRest } = pod.spec;
    const { containers: _b, ...infraRest } = infra.spec;
    assert.deepEqual(podRest, infraRest);
    assert.deepEqual(pod.metadata, infra.metadata);

    // The shim's own loader reads the file with only the paths moved.
    const s = loadShimSettings(localShimConfig(join(home, 'second.sock')), {});
    assert.equal(s.instanceId, p.instanceId);
    assert.equal(s.crkId, p.crkId);
    assert.deepEqual(s.gatewayUrls, [stack.info.gatewayUrl]);
    assert.equal(s.tokenUrl, `${stack.info.gatewayUrl}/identity/token`);
    assert.equal(s.apiKey.reveal(), apiKey);

    const list = await cli('clusters', 'list', ...config(), '--json');
    assert.equal(list.code, 0, list.out);
    const listed = JSON.parse(list.out) as { name: string; crk: string }[];
    assert.deepEqual(
      listed.map((c) => [c.name, c.crk]),
      [['second', p.crkId]],
    );
    // The same name again, a clash with a configured identity, an unknown root key: clear refusals.
    const again = await cli(
      'clusters',
      'add',
      'second',
      ...config(),
      '--instance',
      p.instanceId,
      '--key',
      p.crkId,
      '--gateway-url',
      stack.info.gatewayUrl,
      '--out',
      join(home, 'x1'),
    );
    assert.equal(again.code, 1);
    assert.match(again.out, /CLUSTER_EXISTS/);
    for (const taken of ['dev-cluster', 'dev']) {
      // dev-cluster: a configured identity; dev: its certificate identity spiffe://keygate/cluster/dev.
      const clash = await cli(
        'clusters',
        'add',
        taken,
        ...config(),
        '--instance',
        p.instanceId,
        '--key',
        p.crkId,
        '--gateway-url',
        stack.info.gatewayUrl,
        '--out',
        join(home, `x-${taken}`),
      );
      assert.equal(clash.code, 1, clash.out);
      assert.match(clash.out, /CLUSTER_EXISTS/);
    }
    const unknown = await cli(
      'clusters',
      'add',
      'third',
      ...config(),
      '--instance',
      p.instanceId,
      '--key',
      'no-such-key',
      '--gateway-url',
      stack.info.gatewayUrl,
      '--out',
      join(home, 'x2'),
    );
    assert.equal(unknown.code, 1);
    assert.match(unknown.out, /KEY_NOT_FOUND_ERR/);
  });

  it('a second shim started from the bundle does KMS v2 through the gateway; remove revokes it at once', async () => {
    const socket = join(home, 'second.sock');
    const { service } = await startShimProcess(localShimConfig(socket), { name: 'shim-second' });
    services.push(service);
    await waitHealthy(socket);
    const second = new KmsClient(socket);
    const dev = new KmsClient(stack.info.socket);
    clients.push(second, dev);

    const pt = randomBytes(64);
    const ct = await second.encrypt(pt, 'uid-second-1');
    assert.match(ct.key_id, new RegExp(`^keygate/${stack.prepared.instanceId}/${stack.prepared.crkId}/`));
    assert.ok((await second.decrypt(ct.ciphertext, ct.key_id)).plaintext.equals(pt));
    // Both clusters use the same root key: the dev shim reads what the second one wrote.
    assert.ok((await dev.decrypt(ct.ciphertext, ct.key_id)).plaintext.equals(pt));

    // The second shim reported itself on its wrap: its node shows in the fleet (fleet.json, written
    // every 5 s) and in `clusters show`; once the cluster is removed, the gateway forgets it.
    const secondNodes = async () => {
      const r = await cli('fleet', '--json', ...config());
      assert.equal(r.code, 0, r.out);
      const view = JSON.parse(r.out.slice(r.out.indexOf('{'))) as {
        nodes: { cluster: string; node: string }[];
      };
      return view.nodes.filter((n) => n.cluster === 'second');
    };
    await waitUntil('the second cluster in the fleet', async () => (await secondNodes()).length === 1);
    const shown = await cli('clusters', 'show', 'second', ...config());
    assert.equal(shown.code, 0, shown.out);
    const [secondNode] = await secondNodes();
    assert.ok(shown.out.includes(secondNode?.node ?? '?'), shown.out);

    const remove = await cli('clusters', 'remove', 'second', ...config(), '--yes');
    assert.equal(remove.code, 0, remove.out);
    // The running gateway applies the file change (fs.watch, else its 1 s poll) ...
    await stack.gateway.waitFor(/"removed":\["second"\].*clusters.json changed/, 10_000);
    // ... and the second shim's next gateway call (a new DEK to wrap) is refused.
    // PERMISSION_DENIED: the gateway refused the revoked cluster (its token, then its API key).
    await assert.rejects(
      second.encrypt(randomBytes(16), 'uid-second-2'),
      (e: { code?: number }) => e.code === 7,
    );
    await service.waitFor(/"grpcCode":7,.*GATEWAY_REFUSED/, 10_000);
    // The dev cluster is untouched.
    const devCt = await dev.encrypt(pt, 'uid-dev-1');
    assert.ok((await dev.decrypt(devCt.ciphertext, devCt.key_id)).plaintext.equals(pt));

    // The gateway audited both changes (it is the audit log's one writer), naming the cluster.
    const records = readAuditRecords(stack.prepared.auditDir) as {
      operation?: string;
      target?: string;
      subject?: string;
      outcome?: string;
      errorCode?: string;
    }[];
    for (const op of ['cluster.add', 'cluster.remove']) {
      const r = records.find((x) => x.operation === op && x.target === 'second');
      assert.match(String(r?.subject), /^cli/, `${op}: who ran the command`);
    }
    // The refusal is audited as denied: the token revoked (AUTH_TOKEN_REVOKED) or the key unknown.
    const cut = records.findIndex((r) => r.operation === 'cluster.remove');
    assert.ok(
      records
        .slice(cut)
        .some(
          (r) =>
            r.outcome === 'denied' &&
            (r.errorCode === 'AUTH_TOKEN_REVOKED' || r.errorCode === 'AUTH_APIKEY_INVALID'),
        ),
      'a denied record for the removed cluster',
    );
    await waitUntil(
      'the removed cluster gone from the fleet',
      async () => (await secondNodes()).length === 0,
    );
    // The gateway forgot the nodes itself (not only the CLI in fleet.json): its own view, which
    // its next flush writes, has no node of the removed cluster.
    const i = stack.info;
    const admin = await kpSession({
      url: i.gatewayUrl,
      caFile: i.caFile,
      certFile: i.adminCertFile,
      keyFile: i.adminKeyFile,
      apiKeyFile: i.adminApiKeyFile,
      instance: i.instanceId,
    });
    try {
      const r = await admin.call('GET', '/api/v2/keygate/fleet');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const nodes = (r.body as { nodes: { cluster: string }[] }).nodes;
      assert.deepEqual(
        nodes.filter((n) => n.cluster === 'second'),
        [],
      );
    } finally {
      admin.close();
    }
    const gone = await cli('clusters', 'show', 'second', ...config());
    assert.equal(gone.code, 1);
    assert.match(gone.out, /CLUSTER_NOT_FOUND/);
  });
});

/** Polls `check` every 500 ms for up to 20 s. */
async function waitUntil(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
