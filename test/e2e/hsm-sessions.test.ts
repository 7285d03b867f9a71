import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadGatewayConfig, type RunningGateway, startGateway } from '@keygate/gateway';
import { KmsClient } from '@keygate/shim';
import { startShimProcess, waitHealthy } from '#devstack/launch.js';
import { prepareStack } from '#devstack/prepare-stack.js';
import type { Service } from '#devstack/processes.js';
import { writeShimConfig } from '#devstack/shim-config.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';

/** What this test needs of the PKCS#11 adapter: its library handle and slot, to kill the sessions. */
interface SessionKiller {
  readonly token: { readonly lib: { C_CloseAllSessions(slot: Buffer): void }; readonly slot: Buffer };
}

/**
 * HSM sessions lost under a running gateway: the gateway runs in this process (so the test can
 * close every PKCS#11 session of its token), the shim is a separate process under load.
 */
describe('e2e faults: HSM sessions lost under load', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-e2e-hsm-'));
  let gateway: RunningGateway | undefined;
  let shim: Service | undefined;
  const clients: KmsClient[] = [];
  const counts = { calls: 0, wrong: 0, failed: 0, sessionKills: 0 };

  after(async () => {
    for (const c of clients) c.close();
    await shim?.stop();
    await gateway?.close();
    console.log(
      `e2e hsm counts: ${counts.calls} encrypts, ${counts.sessionKills} session kills, ${counts.wrong} wrong plaintexts, ${counts.failed} failed calls`,
    );
  });

  it('every PKCS#11 session closed mid-load: calls keep succeeding without a restart', async () => {
    const prepared = await prepareStack({ home, gatewayPort: 0, hsm: 'softhsm2' });
    // SOFTHSM2_CONF is read when the module is loaded, so it is set before the gateway starts.
    process.env.SOFTHSM2_CONF = prepared.softhsmConf;
    gateway = await startGateway(loadGatewayConfig(prepared.gatewayConfig), {
      configFile: prepared.gatewayConfig,
      env: { ...process.env, ...prepared.env },
    });
    const socket = join(home, 'kms.sock');
    const cfg = join(home, 'shim.yaml');
    writeShimConfig(prepared, cfg, { gatewayUrls: [gateway.url], socket, healthzPort: 0, newDek: true });
    shim = (await startShimProcess(cfg)).service;
    await waitHealthy(socket);
    const c = new KmsClient(socket);
    clients.push(c);
    const hsm = gateway.runtime.hsm as unknown as SessionKiller;

    const one = async () => {
      const pt = randomBytes(32);
      counts.calls++;
      try {
        const r = await c.encrypt(pt, `h-${counts.calls}`);
        if (!(await c.decrypt(r.ciphertext, r.key_id)).plaintext.equals(pt)) counts.wrong++;
      } catch {
        counts.failed++;
      }
    };
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 8 }, one));
      hsm.token.lib.C_CloseAllSessions(hsm.token.slot);
      counts.sessionKills++;
    }
    await Promise.all(Array.from({ length: 8 }, one));
    assert.equal(counts.wrong, 0, 'a wrong plaintext was returned');
    assert.equal(counts.failed, 0, 'a call failed after the sessions were closed');
  });
});
