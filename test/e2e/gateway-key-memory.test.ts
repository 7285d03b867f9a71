import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadGatewayConfig, type RunningGateway, startGateway } from '@keygate/gateway';
import { REPO_ROOT } from '#devstack/paths.js';
import { prepareStack } from '#devstack/prepare-stack.js';
import { findSecret, memoryScanSkip, type SplitSecret } from '../support/memory-scan.js';

const run = promisify(execFile);

/**
 * Issue 13 item 8, the gateway's side: the gateway necessarily sees every DEK it wraps and
 * unwraps, but only for the request. Here the gateway runs in this process (SoftHSM2, real mutual
 * TLS) and a client in another process wraps and unwraps a DEK that this process never holds in
 * one piece; afterwards no raw copy of it is left anywhere in this process's memory — not in
 * Node's buffer pool, V8's heap, the PKCS#11 worker threads or SoftHSM2. (The base64 text of the
 * DEK in the request and response bodies is a JavaScript string and cannot be zeroed; the scan
 * looks for the raw bytes.)
 */
describe('e2e: no DEK left in gateway memory after its requests', {
  skip: memoryScanSkip(),
}, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-e2e-gwmem-'));
  let gw: RunningGateway | undefined;
  after(async () => {
    await gw?.close();
  });

  // One stack for both: SoftHSM2 reads SOFTHSM2_CONF when the module is first initialised.
  for (const workerThreads of [0, 2]) {
    it(`wraps and unwraps a client's DEK, then holds no copy of it (workerThreads ${workerThreads})`, async () => {
      const p = await prepareStack({ home, gatewayPort: 0, hsm: 'softhsm2' });
      process.env.SOFTHSM2_CONF = p.softhsmConf;
      const config = join(p.home, `gateway-mem-${workerThreads}.yaml`);
      writeFileSync(
        config,
        readFileSync(p.gatewayConfig, 'utf8').replace(
          /workerThreads: \d+/,
          `workerThreads: ${workerThreads}`,
        ),
      );
      await gw?.close();
      gw = await startGateway(loadGatewayConfig(config), {
        configFile: config,
        env: { ...process.env, ...p.env },
      });
      const secret: SplitSecret = { a: randomBytes(16), bMasked: randomBytes(16), mask: randomBytes(16) };
      const settings = {
        url: gw.url,
        caFile: p.pki.caFile,
        certFile: p.pki.clientCertFile,
        keyFile: p.pki.clientKeyFile,
        apiKeyFile: p.apiKeyFile,
        instance: p.instanceId,
        crkId: p.crkId,
        a: secret.a.toString('hex'),
        bMasked: secret.bMasked.toString('hex'),
        mask: secret.mask.toString('hex'),
        rounds: 20,
      };
      const { stdout } = await run(process.execPath, [join(REPO_ROOT, 'test/dist/support/wrap-client.js')], {
        env: { ...process.env, KG_WRAP_CLIENT: JSON.stringify(settings) },
      });
      assert.match(stdout, /ok 20/);
      // Let the last requests' callbacks and the worker threads' replies run first.
      await new Promise((r) => setTimeout(r, 200));
      const left = findSecret(secret);
      console.log(
        `gateway key memory (workerThreads ${workerThreads}): ${left.hits.length} raw copies of the client's DEK after 20 wraps and unwraps (${left.hits.map((h) => `${h.address} ${h.mapping}`).join(', ')}), ${(left.bytesScanned / 2 ** 20).toFixed(0)} MiB scanned`,
      );
      assert.deepEqual(left.hits, [], 'copies of a DEK outlived its requests in the gateway');
    });
  }
});
