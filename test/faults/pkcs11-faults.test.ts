import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type Interposer, startInterposer } from '@keygate/gateway/testing/pkcs11-interposer';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { readAuditRecords } from '../support/e2e-helpers.js';
import { FaultStack } from '../support/fault-stack.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Threads of a process (Linux). */
const threadsOf = (pid: number): number =>
  Number(/^Threads:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);

/** What a network HSM returns while it fails over (issue 17 item 4), each injected below. */
const FAILOVER_CODES = [
  'CKR_DEVICE_ERROR',
  'CKR_DEVICE_REMOVED',
  'CKR_TOKEN_NOT_PRESENT',
  'CKR_SESSION_HANDLE_INVALID',
  'CKR_SESSION_CLOSED',
  'CKR_GENERAL_ERROR',
] as const;

/** The calls of a wrap and an unwrap. */
const CRYPTO_CALLS = ['C_EncryptInit', 'C_Encrypt', 'C_DecryptInit', 'C_Decrypt'];

/** Gateway-side codes a fault may produce: the HSM is unavailable, never a lost or destroyed key. */
const ALLOWED_GATEWAY_CODES = new Set(['HSM_UNAVAILABLE']);

/** The hsm.operationTimeout of this stack: a hung call is given up after it. */
const OPERATION_TIMEOUT_MS = 1_000;

/** hsm.maxHungCalls of this stack: calls left hanging before the adapter stops sending more. */
const MAX_HUNG_CALLS = 4;

/** How long the lasting hang lasts. */
const HANG_MS = 12_000;

/**
 * Fault campaign on the PKCS#11 module itself: the gateway process loads the interposer
 * (gateway/src/testing/pkcs11-interposer) in front of SoftHSM2, two real shims run under load
 * (one wrapping a DEK for every Encrypt), and each failover code a network HSM returns, and a
 * hang, is injected on the crypto calls. One `FAULT` line per fault: failures by code, recovery
 * time, wrong plaintexts (0), undecryptable ciphertexts (0).
 */
describe('faults: the PKCS#11 module fails over, errs and hangs under load', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const stack = new FaultStack('kg-faults-pkcs11-');
  let ip: Interposer;

  /** Error codes of the gateway's audit records since `since`. */
  const gatewayCodes = (since: number): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const r of readAuditRecords(stack.prepared.auditDir)) {
      if (Date.parse(String(r.time)) < since || typeof r.errorCode !== 'string') continue;
      out[r.errorCode] = (out[r.errorCode] ?? 0) + 1;
    }
    return out;
  };
  const gatewayLines = (msg: string) =>
    stack.gateway.service.lines.filter((l) => l.includes(`"msg":"${msg}`));

  before(async () => {
    ip = startInterposer({ target: findSoftHsmModule() ?? '' });
    await stack.start(
      {},
      {
        gatewayConfig: (text) => {
          const module = /^ {2}module: (.+)$/m.exec(text)?.[1];
          assert.ok(module, 'the dev stack config no longer names hsm.module');
          return text
            .replace(`  module: ${module}`, `  module: ${ip.modulePath}`)
            .replace(
              /^ {2}profile: softhsm2$/m,
              `  profile: softhsm2\n  operationTimeout: ${OPERATION_TIMEOUT_MS}ms\n  maxHungCalls: ${MAX_HUNG_CALLS}`,
            );
        },
      },
    );
    assert.match(
      stack.gateway.service.lines.join('\n'),
      /gateway listening/,
      'the gateway started on the interposer',
    );
  });
  after(async () => {
    ip?.clear();
    await stack.stop();
    ip?.close();
  });

  for (const rv of FAILOVER_CODES) {
    it(`${rv} once on a crypto call: retried on a fresh session, no caller sees it`, async () => {
      const before = ip.events('fail').length;
      const since = Date.now();
      ip.set({ fail: [{ fn: CRYPTO_CALLS, rv, count: 1 }] });
      for (let i = 0; i < 50 && ip.events('fail').length === before; i++) await sleep(50);
      assert.equal(ip.events('fail').length, before + 1, 'the fault was injected once');
      await sleep(300);
      ip.clear();
      for (const s of stack.shims) assert.deepEqual(s.load.failures(since), {}, `${s.name} saw the fault`);
      assert.deepEqual(gatewayCodes(since), {});
    });
  }

  for (const rv of FAILOVER_CODES) {
    it(`${rv} on every crypto call for 2 s (a failover): 503 HSM_UNAVAILABLE only, recovery without a restart`, async () => {
      const pid = stack.gateway.service.child.pid;
      const injectedBefore = ip.events('fail').length;
      const since = Date.now();
      ip.set({ fail: [{ fn: CRYPTO_CALLS, rv, forMs: 2_000 }] });
      await sleep(2_000);
      const until = Date.now();
      ip.clear();
      const codes = gatewayCodes(since);
      const report = await stack.verdict(
        `hsm-${rv.toLowerCase().replaceAll('_', '-')}`,
        `${rv} from ${CRYPTO_CALLS.join('/')} for 2 s (interposer)`,
        since,
        until,
        { injected: ip.events('fail').length - injectedBefore, gatewayErrorCodes: codes },
      );
      assert.ok(ip.events('fail').length > injectedBefore, 'nothing was injected');
      assert.ok(
        Object.keys(report.failures).length > 0,
        'the fresh-DEK shim did not notice a 2 s HSM failure',
      );
      assert.deepEqual(stack.shim('cached').load.failures(since), {}, 'the cached shim noticed');
      for (const code of Object.keys(codes))
        assert.ok(ALLOWED_GATEWAY_CODES.has(code), `gateway answered ${code}`);
      assert.ok(!Number.isNaN(report.recoveryMs), 'the load did not recover');
      assert.equal(stack.gateway.service.child.pid, pid);
      assert.equal(stack.gateway.service.child.exitCode, null, 'the gateway exited');
    });
  }

  it('every wrap and unwrap hangs for 3 s: given up after hsm.operationTimeout (503), sessions replaced, recovery while the hung calls still hang', async () => {
    const abandonedBefore = gatewayLines('pkcs11 session abandoned').length;
    const since = Date.now();
    // maxMs: the hung calls return only when the control changes (after the verdict).
    ip.set({ hang: [{ fn: ['C_Encrypt', 'C_Decrypt'], forMs: 3_000, maxMs: 120_000 }] });
    await sleep(3_000);
    const until = Date.now();
    const hung = ip.events('hang').length;
    const report = await stack.verdict(
      'hsm-hang',
      'C_Encrypt/C_Decrypt hang for 3 s (interposer)',
      since,
      until,
      {
        callsHung: hung,
        sessionsAbandoned: gatewayLines('pkcs11 session abandoned').length - abandonedBefore,
        workersReplaced: gatewayLines('pkcs11 worker hung').length,
        gatewayErrorCodes: gatewayCodes(since),
      },
    );
    assert.ok(hung > 0, 'no call hung');
    assert.ok(!Number.isNaN(report.recoveryMs), 'the load did not recover while the hung calls still hang');
    assert.deepEqual(stack.shim('cached').load.failures(since), {}, 'the cached shim noticed');
    for (const code of Object.keys(gatewayCodes(since)))
      assert.ok(ALLOWED_GATEWAY_CODES.has(code), `gateway answered ${code}`);
    // The hung calls return now; their sessions are closed, and the load goes on.
    ip.clear();
    await sleep(1_000);
    const later = Date.now();
    await sleep(1_000);
    for (const s of stack.shims)
      assert.deepEqual(s.load.failures(later), {}, `${s.name} failed after the release`);
  });

  it(`a hang that lasts ${HANG_MS / 1000} s: at most hsm.maxHungCalls calls (and a probe every 5 s) are left hanging, and the threads they held are back after the release`, async () => {
    const pid = stack.gateway.service.child.pid ?? 0;
    const threadsBefore = threadsOf(pid);
    const abandonedBefore = gatewayLines('pkcs11 session abandoned').length;
    const since = Date.now();
    ip.set({ hang: [{ fn: ['C_Encrypt', 'C_Decrypt'], maxMs: 120_000 }] });
    let threadsMax = threadsBefore;
    for (let i = 0; i < HANG_MS / 500; i++) {
      await sleep(500);
      threadsMax = Math.max(threadsMax, threadsOf(pid));
    }
    const hung = ip.events('hang').length;
    const abandoned = gatewayLines('pkcs11 session abandoned').length - abandonedBefore;
    ip.clear();
    const until = Date.now();
    const report = await stack.verdict(
      'hsm-hang-long',
      `C_Encrypt/C_Decrypt hang for ${HANG_MS / 1000} s, then return (interposer)`,
      since,
      until,
      {
        sessionsAbandoned: abandoned,
        threads: { before: threadsBefore, max: threadsMax },
      },
    );
    await sleep(2_000);
    const threadsAfter = threadsOf(pid);
    console.log(
      `  threads: before ${threadsBefore}, max ${threadsMax}, after ${threadsAfter}; calls hung ${hung}`,
    );
    assert.ok(!Number.isNaN(report.recoveryMs), 'the load did not recover');
    // maxHungCalls, then one probe every 5 s (one per second without the bound: 11 or so).
    const bound = MAX_HUNG_CALLS + Math.ceil(HANG_MS / 5_000);
    assert.ok(
      abandoned <= bound,
      `${abandoned} sessions abandoned in ${HANG_MS / 1000} s (at most ${bound}): the adapter kept sending calls into a hung HSM`,
    );
    assert.ok(
      threadsAfter <= threadsBefore + 1,
      `threads: ${threadsBefore} before, ${threadsAfter} after the hung calls returned`,
    );
  });
});
