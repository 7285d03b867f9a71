import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GrpcStatus } from '@keygate/shared';
import { KmsClient } from '@keygate/shim';
import { startGatewayProcess, startShimProcess, waitHealthy } from '#devstack/launch.js';
import { prepareStack } from '#devstack/prepare-stack.js';
import type { Service } from '#devstack/processes.js';
import { writeShimConfig } from '#devstack/shim-config.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { readAuditRecords } from '../support/e2e-helpers.js';
import { encryptBurst } from '../support/grpc-burst.js';
import { auditedAfterDeadline, printFault } from '../support/load.js';

const STORM = 5000;
const SUSTAINED_MS = 4000;
const CONCURRENCY = 16;

/**
 * Issue 13 item 3: with NEW_DEK=true and no cache every Encrypt needs a wrap, so a burst of 5,000
 * at once used to make every call wait for the gateway and every answer arrive after the caller's
 * deadline: zero successes. With the shim's limiter the burst must keep at least half of the
 * sustained rate (both rates measured here, in the same run), and what it cannot serve must be
 * refused fast with UNAVAILABLE, not time out. Real gateway process on SoftHSM2 with mTLS, real
 * shim process, real gRPC over the UNIX socket.
 */
describe('faults: a burst of Encrypts degrades instead of collapsing (NEW_DEK=true, no DEK cache)', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-faults-overload-'));
  const services: Service[] = [];
  let auditDir = '';
  let client: KmsClient;
  let healthPort = 0;
  const socket = join(home, 'kms.sock');

  before(async () => {
    const p = await prepareStack({ home, gatewayPort: 0, hsm: 'softhsm2' });
    auditDir = p.auditDir;
    const gw = await startGatewayProcess(p);
    services.push(gw.service);
    const cfg = join(home, 'kmsplugin-config.yaml');
    writeShimConfig(p, cfg, { gatewayUrls: [gw.url], socket, healthzPort: 0, newDek: true, cacheSize: 0 });
    const shim = await startShimProcess(cfg);
    services.push(shim.service);
    healthPort = shim.healthPort;
    await waitHealthy(socket);
    client = new KmsClient(socket);
  });

  after(async () => {
    client?.close();
    for (const s of services.reverse()) await s.stop();
  });

  /** Encrypts per second from a closed loop of 16 callers, as apiserver's steady writes would be. */
  async function sustainedRate(plaintext: Buffer): Promise<number> {
    let ok = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (performance.now() - t0 < SUSTAINED_MS) {
          // Right after a burst its last calls still hold slots: a refusal here is counted as no success.
          const refused = await client.encrypt(plaintext).then(
            () => false,
            (e: { code?: number }) => {
              if (e.code !== GrpcStatus.UNAVAILABLE) throw e;
              return true;
            },
          );
          if (!refused) ok++;
        }
      }),
    );
    return ok / ((performance.now() - t0) / 1000);
  }

  it(`${STORM.toLocaleString('en')} concurrent Encrypts: goodput >= 50% of the sustained rate, the rest refused fast with UNAVAILABLE`, async () => {
    const plaintext = randomBytes(64);
    const rounds: string[] = [];
    // This machine is shared: a round whose neighbours' load changed between the measurements can
    // miss. The sustained rate is measured right before and right after each burst, and up to
    // three rounds are run; the shim before the limiter made 0 successes in every one.
    for (let round = 1; round <= 3; round++) {
      const before = await sustainedRate(plaintext);
      // The burst, as kube-apiserver would send it: a 3 s deadline on every call.
      const outcomes = await encryptBurst(socket, plaintext, STORM, 3000);
      const after = await sustainedRate(plaintext);
      const sustained = (before + after) / 2;
      const seconds = Math.max(...outcomes.map((o) => o.atMs)) / 1000;
      const by = (code: number) => outcomes.filter((o) => o.code === code);
      const ok = by(GrpcStatus.OK);
      const unavailable = by(GrpcStatus.UNAVAILABLE);
      const lateCalls = by(GrpcStatus.DEADLINE_EXCEEDED);
      const other = outcomes.length - ok.length - unavailable.length - lateCalls.length;
      const goodput = ok.length / seconds;
      const metrics = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
      const count = (reason: string) =>
        new RegExp(`keygate_shim_gateway_calls_rejected_total\\{reason="${reason}"[^}]*\\} (\\d+)`).exec(
          metrics,
        )?.[1] ?? '0';
      const line =
        `overload round ${round}: sustained ${before.toFixed(0)}/s before, ${after.toFixed(0)}/s after (c=${CONCURRENCY}); ` +
        `burst of ${STORM} over ${seconds.toFixed(2)} s: ${ok.length} ok (${goodput.toFixed(0)}/s, ` +
        `${((goodput / sustained) * 100).toFixed(0)}% of sustained), ${unavailable.length} UNAVAILABLE ` +
        `(limiter so far: ${count('overloaded')} refused at once, ${count('expired')} shed from its queue), ` +
        `${lateCalls.length} DEADLINE_EXCEEDED, ${other} other`;
      console.log(line);
      rounds.push(line);
      assert.equal(other, 0, 'only OK, UNAVAILABLE or DEADLINE_EXCEEDED');
      // Every ciphertext the burst produced is good, and no wrap was recorded after its caller gave up.
      let wrong = 0;
      let undecryptable = 0;
      for (const o of ok) {
        if (!o.ciphertext || !o.keyId) undecryptable++;
        else
          await client.decrypt(o.ciphertext, o.keyId).then(
            (d) => {
              if (!d.plaintext.equals(plaintext)) wrong++;
            },
            () => {
              undecryptable++;
            },
          );
      }
      const late = auditedAfterDeadline(readAuditRecords(auditDir));
      assert.equal(wrong, 0, 'a wrong plaintext');
      assert.equal(undecryptable, 0, 'an answered ciphertext does not decrypt');
      assert.equal(late, 0, 'a wrap was recorded as a success after its caller had given up');
      // What cannot be served is refused, not left to time out after the whole deadline.
      const met = goodput >= 0.5 * sustained && unavailable.length > 0 && lateCalls.length <= STORM * 0.02;
      if (met) {
        printFault({
          fault: 'overload-storm',
          injected: `${STORM} concurrent Encrypts, NEW_DEK=true, no DEK cache, 3 s deadline each`,
          failures: { UNAVAILABLE: unavailable.length, DEADLINE_EXCEEDED: lateCalls.length },
          recoveryMs: 0,
          wrongPlaintexts: wrong,
          undecryptable,
          auditedAfterDeadline: late,
          extra: {
            sustainedPerSecond: Math.round(sustained),
            goodputPerSecond: Math.round(goodput),
            goodputShare: Number((goodput / sustained).toFixed(2)),
            ok: ok.length,
            burstSeconds: Number(seconds.toFixed(2)),
          },
        });
        return;
      }
    }
    assert.fail(
      `no round met the target (goodput >= 50% of sustained, <= 2% timed out):\n${rounds.join('\n')}`,
    );
  });
});
