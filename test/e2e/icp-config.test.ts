import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KmsClient } from '@keygate/shim';
import { type DevStack, startDevStack } from '#devstack/devstack.js';
import { startShimProcess, waitHealthy } from '#devstack/launch.js';
import { SHIM_CLI } from '#devstack/paths.js';
import { type Service, startService } from '#devstack/processes.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';

/**
 * An IBM Cloud Private kmsplugin-config.yaml as IBM documents it — its keys, VERSION 1, the API key
 * inline, values plain or quoted — plus only keygate's client certificate and CA keys, read by the
 * real `keygate-shim` CLI against the dev stack (gateway process on SoftHSM2, mutual TLS, tokens).
 * The instance id is `0123`, written plain: YAML would read it as the number 123.
 */
describe('e2e: an ICP kmsplugin-config.yaml, as is, against the dev stack', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-icp-'));
  const INSTANCE = '0123';
  let stack: DevStack;
  const started: Service[] = [];
  const clients: KmsClient[] = [];

  /** The ICP file, every value written `plain` or `quoted` (ICP's docs show both). */
  function icpConfig(style: 'plain' | 'quoted', socket: string): string {
    const p = stack.prepared;
    const apiKey = readFileSync(p.apiKeyFile, 'utf8').trim();
    const q = (v: string | number, single = false) =>
      style === 'plain' ? String(v) : single ? `'${v}'` : `"${v}"`;
    const file = join(home, `kmsplugin-config-${style}.yaml`);
    writeFileSync(
      file,
      `# /etc/cfc/conf/kmsplugin-config.yaml as IBM Cloud Private documents it (${style} values),
# plus keygate's client certificate keys and the gateway's CA (the lines marked "keygate").
SERVER_CONFIG:
  REGION: ${q('us-south')}
  NUM_LEN_BYTES: ${q(32)}
  CACHE_TIMEOUT_IN_HOURS: ${q(24, true)}
  RESTART_DELAY_IN_SECONDS: ${q(3)}
  UNIX_SOCKET_PATH: ${q(socket)}
  TOKEN_URL: ${q(`${stack.info.gatewayUrl}/identity/token`)}
  TOKEN_URL_CA_FILE: ${p.pki.caFile}    # keygate
  API_KEY: ${q(apiKey)}
  HEALTHZ_PATH: ${q('/healthz')}
  HEALTHZ_PORT: ${style === 'plain' ? 0 : '":0"'}
  NEW_DEK: ${style === 'plain' ? 'false' : "'False'"}
  MAX_RETRIES: ${q(2)}
KP_CONFIG:
  VERSION: ${q(1)}
  CRK_ID: ${q(p.crkId)}
  URL: ${q(stack.info.gatewayUrl)}
  KP_CA_FILE: ${p.pki.caFile}    # keygate
  INSTANCE_ID: ${q(INSTANCE, true)}
LOGGER:
  LOG_LEVEL: ${q('info')}
  LOG_ALL_VALUES: ${style === 'plain' ? 'FALSE' : '"false"'}
KEYGATE:    # keygate
  CLIENT_CERT_FILE: ${p.pki.clientCertFile}
  CLIENT_KEY_FILE: ${p.pki.clientKeyFile}
`,
    );
    return file;
  }

  before(async () => {
    // The dev stack grants its identity on INSTANCE and creates the root key there.
    stack = await startDevStack({
      home,
      gatewayPort: 0,
      healthzPort: 0,
      hsm: 'softhsm2',
      instanceId: INSTANCE,
    });
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const s of started) await s.stop();
    await stack?.stop();
  });

  for (const style of ['plain', 'quoted'] as const) {
    it(`keygate-shim check passes with ${style} values`, async () => {
      const file = icpConfig(style, join(home, `check-${style}.sock`));
      // The real CLI, run to its end.
      const check = startService(`check-${style}`, process.execPath, [SHIM_CLI, 'check', '--config', file]);
      const code = await check.exited;
      const out = check.lines.join('\n');
      assert.equal(code, 0, out);
      assert.match(out, /wrap and unwrap ok/);
      // The ids reached the gateway as written: instance "0123" (not 123), the root key's UUID.
      assert.match(out, new RegExp(`key_id keygate/${INSTANCE}/${stack.prepared.crkId}/`));
      assert.doesNotMatch(out, /kg_/, 'the inline API key is never printed');
    });
  }

  it('serve with the ICP file: the ICP log lines, KMS v2 and v1 round trips, the same key as the dev shim', async () => {
    const socket = join(home, 'icp.sock');
    const { service } = await startShimProcess(icpConfig('plain', socket), { name: 'shim-icp' });
    started.push(service);
    await waitHealthy(socket);
    // The two lines operators of the ICP plug-in look for, in keygate's JSON format.
    await service.waitFor(/"msg":"KMS provider server started"/);
    await service.waitFor(/"msg":"SIGTERM handler started"/);

    const icp = new KmsClient(socket);
    const dev = new KmsClient(stack.info.socket);
    clients.push(icp, dev);
    const pt = randomBytes(48);
    // Written through the dev stack's shim (its own config), read through the ICP-config shim.
    const v2 = await dev.encrypt(pt, 'uid-1');
    assert.match(v2.key_id, new RegExp(`^keygate/${INSTANCE}/`));
    assert.ok((await icp.decrypt(v2.ciphertext, v2.key_id)).plaintext.equals(pt));
    const v1 = await icp.v1Encrypt(pt);
    assert.ok((await dev.v1Decrypt(v1.cipher)).plain.equals(pt));

    // A value the ICP plug-in wrote is not in keygate's format: refused as INVALID_ARGUMENT (the
    // old provider must keep reading those), and the shim keeps serving.
    const foreign = Buffer.concat([Buffer.from([0x0a, 0x20]), randomBytes(96)]);
    await assert.rejects(icp.v1Decrypt(foreign), (e: { code?: number }) => e.code === 3);
    assert.ok((await icp.v1Decrypt(v1.cipher)).plain.equals(pt));

    assert.equal(await service.stop(), 0);
    assert.ok(service.lines.some((l) => l.includes('"msg":"signal received: draining in-flight calls"')));
    const key = readFileSync(stack.prepared.apiKeyFile, 'utf8').trim();
    assert.ok(!service.lines.some((l) => l.includes(key)), 'the inline API key is never logged');
  });
});
