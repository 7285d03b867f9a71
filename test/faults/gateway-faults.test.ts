import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ensurePki } from '#devstack/dev-pki.js';
import { REPO_ROOT } from '#devstack/paths.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { readAuditRecords } from '../support/e2e-helpers.js';
import { FaultStack } from '../support/fault-stack.js';

const run = promisify(execFile);

/**
 * Fault campaign, the gateway's front door (issue 13): a real gateway on SoftHSM2 and two real
 * shims under load (test/support/fault-stack.ts) while one fault at a time is injected: a flood
 * of refused token requests, handshake floods, a key store cut short. Each prints a `FAULT`
 * line: what was injected, the failures the load saw by gRPC code, the recovery time, wrong
 * plaintexts and undecryptable ciphertexts (both must be 0), and audited key operations
 * answered after their caller's deadline (must be 0).
 */
describe('faults: the gateway under a bad day', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const stack = new FaultStack('kg-faults-gw-');

  before(async () => {
    await stack.start();
  });
  after(async () => {
    await stack.stop();
  });

  it('an intruder certificate floods /identity/token with a wrong API key: the audit log and the clusters do not notice', async () => {
    const pki = ensurePki(join(stack.home, 'pki'), 'intruder');
    const ca = readFileSync(pki.caFile);
    const agent = new Agent({
      keepAlive: true,
      maxSockets: 16,
      ca,
      cert: readFileSync(pki.clientCertFile),
      key: readFileSync(pki.clientKeyFile),
    });
    const before = readAuditRecords(stack.prepared.auditDir).length;
    const since = Date.now();
    const statuses: Record<string, number> = {};
    const body = 'grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey=kg_guess';
    const one = () =>
      new Promise<void>((resolve) => {
        const req = request(
          `${stack.gateway.url}/identity/token`,
          { method: 'POST', agent, headers: { 'content-type': 'application/x-www-form-urlencoded' } },
          (res) => {
            statuses[String(res.statusCode)] = (statuses[String(res.statusCode)] ?? 0) + 1;
            res.resume();
            res.on('end', resolve);
          },
        );
        req.on('error', () => {
          statuses.error = (statuses.error ?? 0) + 1;
          resolve();
        });
        req.end(body);
      });
    const total = 3000;
    for (let i = 0; i < total; i += 100) await Promise.all(Array.from({ length: 100 }, one));
    const until = Date.now();
    agent.destroy();
    await new Promise((r) => setTimeout(r, 300));
    const refusals = readAuditRecords(stack.prepared.auditDir)
      .slice(before)
      .filter((r) => r.operation === 'token.issue' && r.outcome !== 'success');
    const report = await stack.verdict(
      'refused-token-flood',
      `${total} token requests, wrong API key, one certificate`,
      since,
      until,
      {
        answers: statuses,
        auditRecordsForTheFlood: refusals.length,
      },
    );
    assert.deepEqual(report.failures, {}, 'the clusters saw failures');
    assert.ok((statuses['429'] ?? 0) > total * 0.9, JSON.stringify(statuses));
    assert.ok(refusals.length <= 5, `${refusals.length} audit records for the flood`);
  });

  it('2,000 TLS handshakes without a certificate, five times, from another source: the clusters do not notice', async () => {
    const port = new URL(stack.gateway.url).port;
    const pid = stack.gateway.service.child.pid;
    const rssMb = () =>
      Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]) / 1024;
    const rssBefore = rssMb();
    const since = Date.now();
    const bursts: unknown[] = [];
    for (let b = 0; b < 5; b++) {
      const { stdout } = await run(process.execPath, [
        join(REPO_ROOT, 'test/dist/support/tls-flood.js'),
        port,
        '2000',
      ]);
      bursts.push(JSON.parse(stdout));
    }
    const until = Date.now();
    const report = await stack.verdict(
      'handshake-flood',
      '5 x 2,000 TLS handshakes without a client certificate from 127.0.0.2',
      since,
      until,
      {
        bursts,
        gatewayRssMb: { before: Math.round(rssBefore), after: Math.round(rssMb()) },
      },
    );
    assert.deepEqual(report.failures, {}, 'the clusters saw failures');
  });

  it('the key store file is truncated for 2 s and put back: 503s only, no key state change, no restart', async () => {
    const store = join(stack.prepared.home, 'keys.json');
    const good = readFileSync(store);
    const cached = stack.shim('cached').load;
    const fresh = stack.shim('fresh').load;
    const cacheBefore = await stack.cacheSize('cached');
    const since = Date.now();
    writeFileSync(store, good.subarray(0, 20));
    await new Promise((r) => setTimeout(r, 2000));
    writeFileSync(store, good);
    const until = Date.now();
    await new Promise((r) => setTimeout(r, 2500));
    const report = await stack.verdict(
      'store-truncated',
      'keys.json cut to 20 bytes for 2 s, then restored',
      since,
      until,
      {
        cachedShimFailures: cached.failures(since),
        freshShimFailures: fresh.failures(since),
        cachedShimDekCache: { before: cacheBefore, after: await stack.cacheSize('cached') },
      },
    );
    // Only transient failures (the gateway answered 503), never a key state (FAILED_PRECONDITION).
    for (const code of Object.keys(report.failures))
      assert.ok(['UNAVAILABLE', 'DEADLINE_EXCEEDED'].includes(code), code);
    assert.deepEqual(cached.failures(since), {}, 'the shim serving from its cache failed');
    assert.ok(!Number.isNaN(report.recoveryMs), 'never recovered');
  });
});
