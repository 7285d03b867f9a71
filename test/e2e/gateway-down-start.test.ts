import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KmsClient } from '@keygate/shim';
import { startGatewayProcess, startShimProcess, waitHealthy } from '#devstack/launch.js';
import { type PreparedStack, prepareStack } from '#devstack/prepare-stack.js';
import type { Service } from '#devstack/processes.js';
import { writeShimConfig } from '#devstack/shim-config.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { freePort, gatewayConfigOnPort, readAuditRecords } from '../support/e2e-helpers.js';

/**
 * Faults across processes: a shim that starts while the gateway is down, and access tokens that
 * expire during the run (1-minute lifetime) and must be refreshed without a single failed call.
 */
describe('e2e faults: gateway down at shim start; token lifetime shorter than the run', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-e2e-faults-'));
  const services: Service[] = [];
  const clients: KmsClient[] = [];
  const counts = { calls: 0, wrong: 0, failed: 0 };
  let prepared: PreparedStack;
  let gatewayConfig: string;
  let socket: string;

  after(async () => {
    for (const c of clients) c.close();
    for (const s of services.reverse()) await s.stop();
    console.log(
      `e2e faults counts: ${counts.calls} encrypt+decrypt pairs, ${counts.wrong} wrong plaintexts, ${counts.failed} failed calls`,
    );
  });

  it('a shim started while the gateway is down reports unhealthy with a reason, then healthy once it is up', async () => {
    prepared = await prepareStack({ home, gatewayPort: 0, hsm: 'softhsm2', tokenLifetime: '1m' });
    const port = await freePort();
    gatewayConfig = gatewayConfigOnPort(prepared.gatewayConfig, port, join(home, 'gateway-fixed-port.yaml'));
    socket = join(home, 'kms.sock');
    const shimConfig = join(home, 'shim.yaml');
    writeShimConfig(prepared, shimConfig, {
      gatewayUrls: [`https://127.0.0.1:${port}`],
      socket,
      healthzPort: 0,
      newDek: true, // every Encrypt needs the gateway, so tokens are really used all along
      refreshSeconds: 1,
    });
    services.push((await startShimProcess(shimConfig)).service);
    const c = new KmsClient(socket);
    clients.push(c);
    const status = await c.status();
    assert.notEqual(status.healthz, 'ok');
    assert.ok(status.healthz.length > 3, `no reason given: "${status.healthz}"`);
    console.log(`Status while the gateway is down: healthz="${status.healthz}"`);
    await assert.rejects(c.encrypt(randomBytes(32), 'down'), (e: { code?: number }) => e.code === 14);

    const gateway = (await startGatewayProcess(prepared, { config: gatewayConfig })).service;
    services.push(gateway);
    // A 1-minute lifetime is below what Key Protect clients handle well: the operator is told at start.
    assert.ok(gateway.lines.some((l) => /"level":"warn".*tokens\.lifetime is under 5 minutes/.test(l)));
    const keyId = await waitHealthy(socket);
    assert.match(keyId, new RegExp(prepared.crkId));
  });

  it('tokens that expire during the run are refreshed transparently (1-minute lifetime, 70 s of calls)', async () => {
    const c = new KmsClient(socket);
    clients.push(c);
    const end = Date.now() + 70_000;
    while (Date.now() < end) {
      const pt = randomBytes(32);
      counts.calls++;
      try {
        const r = await c.encrypt(pt, `t-${counts.calls}`);
        const back = await c.decrypt(r.ciphertext, r.key_id);
        if (!back.plaintext.equals(pt)) counts.wrong++;
      } catch {
        counts.failed++;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const records = readAuditRecords(prepared.auditDir);
    const tokens = records.filter((r) => r.operation === 'token.issue' && r.outcome === 'success').length;
    console.log(`token issuances during the run: ${tokens}`);
    assert.ok(tokens >= 2, `expected the token to be refreshed at least once, saw ${tokens} issuances`);
    assert.equal(counts.wrong, 0);
    assert.equal(counts.failed, 0, 'a call failed while tokens were refreshed');
  });
});
