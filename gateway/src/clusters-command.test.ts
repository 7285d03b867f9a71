import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { MemoryFleetStore } from './adapters/fleet/memory-fleet-store.js';
import { createSigningKeyFile } from './adapters/jwt/signing-keys.js';
import { runClustersCommand } from './clusters-command.js';
import { createGatewayFixture, type GatewayFixture, INSTANCE } from './testing/gateway-fixture.js';
import { CLI } from './testing/token-mode.js';

const run = promisify(execFile);

describe('keygate-gateway clusters: modes, refusals and clusters.json (file store)', () => {
  let fx: GatewayFixture;
  let tokenConfig: string;
  let allowlistConfig: string;
  let caDir: string;
  let keyId: string;
  const lines: string[] = [];
  const out = (l: string) => lines.push(l);
  const cmd = (...args: string[]) => runClustersCommand(['clusters', ...args], out, out);

  before(async () => {
    fx = await createGatewayFixture();
    const dir = fx.softhsm.dir;
    const signingKeyFile = join(dir, 'cc-token-key.pem');
    await createSigningKeyFile(signingKeyFile);
    caDir = join(dir, 'cc-ca');
    mkdirSync(caDir);
    writeFileSync(join(caDir, 'ca.pem'), fx.ca.certPem);
    writeFileSync(join(caDir, 'ca-key.pem'), fx.ca.keyPem, { mode: 0o600 });
    tokenConfig = fx.writeConfig('clusters-file', {
      access: false,
      storeFile: join(dir, 'cc-store', 'keys.json'),
      extra: `identities:
  - name: svc
    apiKeyHashes: ['sha256:${'1'.repeat(64)}']
    certIdentities: [spiffe://keygate/cluster/svc-cert]
    roles: { ${INSTANCE}: [wrap] }
tokens:
  signingKeyFiles: [${signingKeyFile}]
`,
    });
    mkdirSync(join(dir, 'cc-store'));
    allowlistConfig = fx.writeConfig('clusters-allowlist');
    const created = await run(process.execPath, [
      CLI,
      'keys',
      'create',
      '--config',
      tokenConfig,
      '--instance',
      INSTANCE,
      '--name',
      'crk',
    ]);
    keyId = (JSON.parse(created.stdout) as { id: string }).id;
  });

  after(() => fx?.softhsm.cleanup());

  const add = (name: string, ...more: string[]) =>
    cmd('add', name, '--config', tokenConfig, '--instance', INSTANCE, '--key', keyId, ...more);

  it('the certificate allow-list mode is refused with a message naming token mode', async () => {
    await assert.rejects(
      cmd('list', '--config', allowlistConfig),
      (e: { code?: string; detail?: { reason?: string } }) => {
        assert.equal(e.code, 'CLUSTERS_NEED_TOKENS');
        assert.match(String(e.detail?.reason), /tokens section/);
        return true;
      },
    );
  });

  it('usage errors exit 2 before anything is touched', async () => {
    assert.equal(await cmd('add', 'x', '--config', tokenConfig, '--key', keyId), 2);
    assert.equal(await add('bad/name'), 2);
    assert.equal(await add('x', '--roles', 'wrap,root'), 2);
    assert.equal(await add('x', '--gateway-url', 'http://plain:80'), 2);
    assert.equal(await add('x', '--days', '0'), 2);
    // The fixture gateway listens on port 0: the URL cannot be guessed from the config.
    assert.equal(await add('x', '--ca', caDir), 2);
    assert.match(lines.join('\n'), /--gateway-url URL is required/);
    assert.equal(await cmd('remove', 'x', '--config', tokenConfig), 2);
    assert.match(lines.join('\n'), /pass --yes/);
  });

  it('a CA folder without the CA key says which option to pass', async () => {
    lines.length = 0;
    const empty = join(fx.softhsm.dir, 'no-ca');
    mkdirSync(empty);
    assert.equal(
      await add('x', '--ca', empty, '--gateway-url', 'https://gw:8443', '--out', join(empty, 'b')),
      1,
    );
    assert.match(lines.join('\n'), /pass --ca DIR/);
  });

  it('add writes clusters.json (0600, hash only) beside the key store; a non-empty --out is refused and adds nothing', async () => {
    const busy = join(fx.softhsm.dir, 'busy');
    mkdirSync(busy);
    writeFileSync(join(busy, 'x'), '');
    await assert.rejects(
      add('c1', '--ca', caDir, '--gateway-url', 'https://gw:8443', '--out', busy),
      /not empty/,
    );
    lines.length = 0;
    assert.equal(await cmd('list', '--config', tokenConfig), 0);
    assert.match(lines.join('\n'), /no clusters/);
    const outDir = join(fx.softhsm.dir, 'b-c1');
    assert.equal(await add('c1', '--ca', caDir, '--gateway-url', 'https://gw:8443', '--out', outDir), 0);
    const file = join(fx.softhsm.dir, 'cc-store', 'clusters.json');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const apiKey = readFileSync(join(outDir, 'api-key'), 'utf8').trim();
    assert.ok(!readFileSync(file, 'utf8').includes(apiKey));
    assert.match(readFileSync(file, 'utf8'), /"apiKeyHashes": \[\s*"sha256:[0-9a-f]{64}"/);
    lines.length = 0;
    assert.equal(await cmd('list', '--config', tokenConfig), 0);
    assert.match(lines[1] ?? '', new RegExp(`^c1\\s+${INSTANCE}\\s+${keyId}\\s`));
    lines.length = 0;
    // The fleet view, when the program has one: show lists the cluster's nodes, remove forgets them.
    const store = new MemoryFleetStore();
    store.noteNode({
      cluster: 'c1',
      node: 'master-1',
      instance: INSTANCE,
      crk: keyId,
      shimVersion: '0.1.0',
      apis: ['v2'],
      cacheSize: 0,
      health: 'ok',
      lastSeen: new Date().toISOString(),
      replica: 'r1',
    });
    let closed = 0;
    const modes: boolean[] = [];
    const openFleet = async (_c: unknown, _f: string, readOnly: boolean) => {
      modes.push(readOnly);
      return {
        forgetCluster: (c: string) => store.forgetCluster(c),
        nodes: () => store.nodes(),
        close: async () => {
          closed++;
        },
      };
    };
    assert.equal(
      await runClustersCommand(['clusters', 'show', 'c1', '--config', tokenConfig], out, out, { openFleet }),
      0,
    );
    const shown = JSON.parse(lines.join('\n')) as { name: string; nodes: { node: string }[] };
    assert.deepEqual([shown.name, shown.nodes.map((n) => n.node)], ['c1', ['master-1']]);
    assert.equal(
      await runClustersCommand(['clusters', 'remove', 'c1', '--config', tokenConfig], out, out, {
        openFleet,
        confirm: async () => true,
      }),
      0,
    );
    assert.deepEqual(await store.nodes(), []);
    assert.equal(closed, 2);
    assert.deepEqual(modes, [true, false], 'show opens the fleet store read only, remove writable');
    await assert.rejects(cmd('remove', 'c1', '--config', tokenConfig, '--yes'), {
      code: 'CLUSTER_NOT_FOUND',
    });
  });
});
