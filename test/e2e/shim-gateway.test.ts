import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KmsClient } from '@keygate/shim';
import { type DevStack, startDevStack } from '#devstack/devstack.js';
import { startGatewayProcess, startShimProcess, waitHealthy } from '#devstack/launch.js';
import type { Service } from '#devstack/processes.js';
import { writeShimConfig } from '#devstack/shim-config.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { freePort, gatewayConfigOnPort, readAuditRecords } from '../support/e2e-helpers.js';

/**
 * The shim against the real gateway on SoftHSM2, counted on the gateway side (its audit log has
 * one record per unwrap it performed): coalesced unwraps on a cold node, failover past a dead
 * gateway URL with its breaker open, and a gateway SIGKILLed in the middle of a load run.
 */
describe('e2e: shim against the real gateway, counted on the gateway', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-e2e-sg-'));
  let stack: DevStack;
  const services: Service[] = [];
  const clients: KmsClient[] = [];
  const counts = { calls: 0, ok: 0, unavailable: 0, wrong: 0, undecryptable: 0 };

  const client = (socket: string) => {
    const c = new KmsClient(socket);
    clients.push(c);
    return c;
  };
  const unwrapsOnGateway = () =>
    readAuditRecords(stack.prepared.auditDir).filter(
      (r) => r.operation === 'unwrap' && r.outcome === 'success',
    ).length;

  before(async () => {
    stack = await startDevStack({ home, gatewayPort: 0, healthzPort: 0, hsm: 'softhsm2' });
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const s of services.reverse()) await s.stop();
    await stack?.stop();
    console.log(
      `e2e shim-gateway counts: ${counts.calls} calls under the kill (${counts.ok} ok, ${counts.unavailable} UNAVAILABLE), ${counts.wrong} wrong plaintexts, ${counts.undecryptable} undecryptable`,
    );
  });

  it('a cold shim behind a dead first URL: fails over, opens that breaker, and 64 + 1,000 decrypts of one DEK cost one unwrap', async () => {
    const seeder = client(stack.info.socket);
    const made = await Promise.all(
      Array.from({ length: 20 }, async () => {
        const pt = randomBytes(32);
        return { pt, r: await seeder.encrypt(pt, 'seed') };
      }),
    );
    const dead = `https://127.0.0.1:${await freePort()}`;
    const socket = join(home, 'cold', 'kms.sock');
    const cfg = join(home, 'cold.yaml');
    // NEW_DEK=true: every Encrypt wraps, so the calls below try the dead URL often enough to open its breaker.
    writeShimConfig(stack.prepared, cfg, {
      gatewayUrls: [dead, stack.info.gatewayUrl],
      socket,
      healthzPort: 0,
      newDek: true,
    });
    const cold = await startShimProcess(cfg, { name: 'cold-shim' });
    services.push(cold.service);
    await waitHealthy(socket);
    const c = client(socket);

    const before = unwrapsOnGateway();
    const first = await Promise.all(
      Array.from({ length: 64 }, (_, i) => {
        const m = made[i % made.length] as (typeof made)[number];
        return c.decrypt(m.r.ciphertext, m.r.key_id).then((d) => d.plaintext.equals(m.pt));
      }),
    );
    assert.ok(first.every(Boolean), 'a wrong plaintext');
    assert.equal(
      unwrapsOnGateway() - before,
      1,
      '64 concurrent cold decrypts of one DEK must cost one unwrap',
    );
    for (let i = 0; i < 1000; i++) {
      const m = made[i % made.length] as (typeof made)[number];
      assert.ok((await c.decrypt(m.r.ciphertext, m.r.key_id)).plaintext.equals(m.pt));
    }
    assert.equal(unwrapsOnGateway() - before, 1, '1,000 more decrypts must cost no unwrap');

    for (let i = 0; i < 5; i++) {
      const pt = randomBytes(32);
      const r = await c.encrypt(pt, 'failover');
      assert.ok((await c.decrypt(r.ciphertext, r.key_id)).plaintext.equals(pt));
    }
    const metrics = await (await fetch(`http://127.0.0.1:${cold.healthPort}/metrics`)).text();
    const state = new RegExp(`keygate_shim_gateway_breaker_state\\{url="${dead}"[^}]*\\} (\\d)`).exec(
      metrics,
    );
    assert.ok(state, 'no breaker state for the dead URL');
    assert.notEqual(state[1], '0', 'the breaker of the dead URL did not open');
  });

  it('the gateway SIGKILLed mid-load and restarted: no wrong plaintext, every ciphertext it answered decrypts later', async () => {
    const socket = join(home, 'load', 'kms.sock');
    const cfg = join(home, 'load.yaml');
    writeShimConfig(stack.prepared, cfg, {
      gatewayUrls: [stack.info.gatewayUrl],
      socket,
      healthzPort: 0,
      newDek: true,
    });
    services.push((await startShimProcess(cfg, { name: 'load-shim' })).service);
    await waitHealthy(socket);
    const c = client(socket);
    const made: { pt: Buffer; ct: Buffer; keyId: string }[] = [];
    let running = true;
    const worker = async () => {
      while (running) {
        const pt = randomBytes(32);
        counts.calls++;
        try {
          const r = await c.encrypt(pt, 'load');
          made.push({ pt, ct: r.ciphertext, keyId: r.key_id });
          counts.ok++;
        } catch (err) {
          if ((err as { code?: number }).code === 14 || (err as { code?: number }).code === 4)
            counts.unavailable++;
          else throw err;
        }
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await new Promise((r) => setTimeout(r, 1000));
    await stack.gateway.kill();
    await new Promise((r) => setTimeout(r, 1500));
    const port = new URL(stack.info.gatewayUrl).port;
    const fixed = gatewayConfigOnPort(
      stack.prepared.gatewayConfig,
      port,
      join(home, 'gateway-same-port.yaml'),
    );
    services.push(
      (await startGatewayProcess(stack.prepared, { name: 'gateway-restarted', config: fixed })).service,
    );
    await new Promise((r) => setTimeout(r, 1500));
    running = false;
    await Promise.all(workers);
    assert.ok(counts.ok > 0);
    for (const m of made) {
      try {
        if (!(await c.decrypt(m.ct, m.keyId)).plaintext.equals(m.pt)) counts.wrong++;
      } catch {
        counts.undecryptable++;
      }
    }
    assert.equal(counts.wrong, 0, 'a wrong plaintext was returned');
    assert.equal(counts.undecryptable, 0, 'a ciphertext the shim answered could not be decrypted later');
  });
});
