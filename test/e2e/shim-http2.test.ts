import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KmsClient } from '@keygate/shim';
import { startGatewayProcess, startShimProcess, waitHealthy } from '#devstack/launch.js';
import { type PreparedStack, prepareStack } from '#devstack/prepare-stack.js';
import type { Service } from '#devstack/processes.js';
import { writeShimConfig } from '#devstack/shim-config.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { readAuditRecords } from '../support/e2e-helpers.js';

/**
 * The per-request mode (NEW_DEK=true, CACHE_SIZE=0) over HTTP/2: a gateway with `server.http2`
 * and a shim with `KEYGATE.GATEWAY_HTTP2`, both real processes on SoftHSM2 with the dev PKI. Every
 * Encrypt is a wrap and every Decrypt an unwrap on the gateway, under the shim's certificate
 * identity (the gateway reads it once per HTTP/2 session), and an HTTP/1.1-only shim is still
 * served by the same gateway port.
 */
describe('e2e: shim and gateway over HTTP/2, per-request mode', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-e2e-h2-'));
  let p: PreparedStack;
  let gatewayUrl: string;
  const services: Service[] = [];
  const clients: KmsClient[] = [];

  const shim = async (name: string, http2: boolean): Promise<KmsClient> => {
    const socket = join(home, name, 'kms.sock');
    const cfg = join(home, `${name}.yaml`);
    writeShimConfig(p, cfg, {
      gatewayUrls: [gatewayUrl],
      socket,
      healthzPort: 0,
      newDek: true,
      cacheSize: 0,
      extraKeygate: { GATEWAY_HTTP2: String(http2) },
    });
    services.push((await startShimProcess(cfg, { name })).service);
    await waitHealthy(socket);
    const c = new KmsClient(socket);
    clients.push(c);
    return c;
  };
  const successes = (operation: string) =>
    readAuditRecords(p.auditDir).filter((r) => r.operation === operation && r.outcome === 'success');

  before(async () => {
    p = await prepareStack({ home, hsm: 'softhsm2', gatewayPort: 0, logLevel: 'info' });
    const config = join(home, 'gateway-h2.yaml');
    const text = readFileSync(p.gatewayConfig, 'utf8');
    assert.match(text, /^ {2}port: 0$/m);
    writeFileSync(config, text.replace(/^ {2}port: 0$/m, '  port: 0\n  http2: true'));
    const gw = await startGatewayProcess(p, { name: 'gateway-h2', config });
    services.push(gw.service);
    gatewayUrl = gw.url;
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const s of services.reverse()) await s.stop();
    rmSync(home, { recursive: true, force: true });
  });

  for (const http2 of [true, false]) {
    it(`every Encrypt wraps and every Decrypt unwraps on the gateway (shim on HTTP/${http2 ? '2' : '1.1'})`, async () => {
      const c = await shim(http2 ? 'shim-h2' : 'shim-h1', http2);
      const wraps0 = successes('wrap').length;
      const unwraps0 = successes('unwrap').length;
      const n = 40;
      const ok = await Promise.all(
        Array.from({ length: n }, async () => {
          const pt = randomBytes(32);
          const r = await c.encrypt(pt, 'h2');
          return (await c.decrypt(r.ciphertext, r.key_id, 'h2')).plaintext.equals(pt);
        }),
      );
      assert.ok(ok.every(Boolean), 'a wrong plaintext');
      // At least n each (the shim's key_id refresh also wraps), all under the shim's certificate.
      const wraps = successes('wrap').slice(wraps0);
      const unwraps = successes('unwrap').slice(unwraps0);
      assert.ok(wraps.length >= n, `${wraps.length} wraps`);
      assert.equal(unwraps.length, n);
      const identities = new Set([...wraps, ...unwraps].map((r) => r.certIdentity));
      assert.equal(identities.size, 1);
      assert.ok([...identities][0]);
    });
  }
});
