import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startGatewayProcess } from '#devstack/launch.js';
import { GATEWAY_CLI } from '#devstack/paths.js';
import { rootKeyAction } from '#devstack/prepare-stack.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { gatewayConfigOnPort, readAuditRecords } from '../support/e2e-helpers.js';
import { FaultStack } from '../support/fault-stack.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Fault campaign, behind the gateway (issue 13): the HSM token's storage disappears for a few
 * seconds, the gateway is SIGKILLed mid-load, and its audit log is cut back to an earlier clean
 * shutdown. Real gateway process on SoftHSM2, two real shims under load; one `FAULT` line each.
 */
describe('faults: the HSM, a crash and the audit log', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const stack = new FaultStack('kg-faults-backend-');

  before(async () => {
    await stack.start();
  });
  after(async () => {
    await stack.stop();
  });

  it('the SoftHSM2 token folder is gone for 2 s and back: 503s only, no key is "destroyed", caches intact, no restart', async () => {
    const tokens = join(dirname(String(stack.prepared.softhsmConf)), 'tokens');
    const [token] = readdirSync(tokens);
    assert.ok(token, 'no token folder');
    const hidden = join(dirname(tokens), 'hidden-token');
    const cacheBefore = await stack.cacheSize('cached');
    const since = Date.now();
    renameSync(join(tokens, token), hidden);
    await sleep(2000);
    renameSync(hidden, join(tokens, token));
    const until = Date.now();
    await sleep(3000);
    const records = readAuditRecords(stack.prepared.auditDir).filter(
      (r) => Date.parse(String(r.time)) >= since,
    );
    const codes = [...new Set(records.map((r) => r.errorCode).filter((c) => c !== undefined))];
    const report = await stack.verdict(
      'hsm-token-hidden',
      'SoftHSM2 token folder renamed away for 2 s',
      since,
      until,
      {
        gatewayErrorCodes: codes,
        cachedShimFailures: stack.shim('cached').load.failures(since),
        cachedShimDekCache: { before: cacheBefore, after: await stack.cacheSize('cached') },
      },
    );
    assert.ok(!codes.includes('KEY_DELETED_ERR'), 'the gateway answered KEY_DELETED_ERR for a glitch');
    for (const code of Object.keys(report.failures))
      assert.ok(['UNAVAILABLE', 'DEADLINE_EXCEEDED'].includes(code), code);
    assert.deepEqual(stack.shim('cached').load.failures(since), {}, 'the shim serving from its cache failed');
    assert.ok((await stack.cacheSize('cached')) >= cacheBefore, 'the shim dropped its cached DEKs');
    assert.ok(!Number.isNaN(report.recoveryMs), 'never recovered');
  });

  it('the root key is disabled for 3 s and enabled again: the shims stop using it within their refresh, and serve again', async () => {
    const since = Date.now();
    rootKeyAction(stack.prepared, 'disable');
    await sleep(3000);
    rootKeyAction(stack.prepared, 'enable');
    const until = Date.now();
    const firstRefusal = Math.min(
      ...stack.shims.map(
        (s) =>
          s.load.outcomes.find((o) => o.at >= since && o.failure === 'FAILED_PRECONDITION')?.at ??
          Number.POSITIVE_INFINITY,
      ),
    );
    const report = await stack.verdict(
      'key-disabled',
      'keygate-gateway keys disable, enable after 3 s',
      since,
      until,
      {
        msFromDisableCommandToFirstRefusal: firstRefusal - since,
        cachedShimFailures: stack.shim('cached').load.failures(since),
      },
    );
    // Both shims stopped (also the one serving from its cache), and only with the key-state code.
    for (const s of stack.shims)
      assert.ok((s.load.failures(since).FAILED_PRECONDITION ?? 0) > 0, `${s.name} kept using a disabled key`);
    for (const code of Object.keys(report.failures))
      assert.ok(['FAILED_PRECONDITION', 'UNAVAILABLE'].includes(code), code);
    assert.ok(!Number.isNaN(report.recoveryMs), 'never recovered after the enable');
  });

  it('the gateway is SIGKILLed mid-load and restarted: it starts (the audit anchor is behind, not ahead), nothing is lost', async () => {
    const since = Date.now();
    await stack.gateway.service.kill();
    await sleep(1000);
    await stack.restartGateway('gateway-after-kill');
    const until = Date.now();
    await sleep(2500);
    const recovery = readAuditRecords(stack.prepared.auditDir).filter((r) => r.type === 'recovery');
    const report = await stack.verdict(
      'gateway-sigkill',
      'SIGKILL of the gateway under load, restart after 1 s',
      since,
      until,
      {
        recoveryRecords: recovery.length,
      },
    );
    assert.ok(recovery.length >= 1, 'no recovery record after the crash');
    assert.ok(!Number.isNaN(report.recoveryMs), 'never recovered');
  });

  it('the audit log is cut back to an earlier clean shutdown: the gateway refuses to start until the loss is acknowledged', async () => {
    const audit = stack.prepared.auditDir;
    const snapshot = join(stack.home, 'audit-snapshot');
    await stack.gateway.service.stop();
    cpSync(audit, snapshot, { recursive: true });
    await stack.restartGateway('gateway-run-2');
    await sleep(1500);
    await stack.gateway.service.stop();
    // Put the earlier (clean, sealed) state back: a cut-back that verifies as a sealed chain.
    rmSync(audit, { recursive: true });
    cpSync(snapshot, audit, { recursive: true });
    const since = Date.now();
    const port = new URL(stack.gateway.url).port;
    const config = gatewayConfigOnPort(
      stack.prepared.gatewayConfig,
      port,
      join(stack.home, 'gateway-cut.yaml'),
    );
    const refused = await startGatewayProcess(stack.prepared, { name: 'gateway-on-cut-log', config }).then(
      async (g) => {
        await g.service.stop();
        return undefined;
      },
      (err: unknown) => String(err),
    );
    assert.ok(refused !== undefined, 'the gateway started on a cut-back audit log');
    assert.match(refused, /acknowledge-loss/);
    const ack = await run(
      process.execPath,
      [GATEWAY_CLI, 'audit', 'acknowledge-loss', '--config', config, '--reason', 'fault test'],
      {
        env: { ...process.env, ...stack.prepared.env },
      },
    );
    await stack.restartGateway('gateway-after-ack');
    const until = Date.now();
    await sleep(2500);
    const losses = readAuditRecords(audit).filter((r) => r.type === 'loss');
    const report = await stack.verdict(
      'audit-cut-back',
      'audit folder replaced by its copy from the previous clean shutdown',
      since,
      until,
      {
        refusedWith: /AUDIT_ANCHOR_MISMATCH|cut-back|erased/.exec(refused)?.[0],
        acknowledged: ack.stdout.trim().split('\n').at(-1),
        lossRecords: losses.length,
      },
    );
    assert.equal(losses.length, 1, 'one signed loss record');
    assert.ok(!Number.isNaN(report.recoveryMs), 'never recovered');
  });
});
