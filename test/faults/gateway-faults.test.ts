import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { ensurePki } from '../support/dev-pki.js';
import {
  type PreparedStack,
  prepareStack,
  REPO_ROOT,
  startGatewayProcess,
  startShimProcess,
  waitHealthy,
  writeShimConfig,
} from '../support/devstack.js';
import { readAuditRecords } from '../support/e2e-helpers.js';
import { auditedAfterDeadline, KmsLoad, printFault } from '../support/load.js';
import type { Service } from '../support/processes.js';
import { findSoftHsmModule } from '../support/softhsm.js';

const run = promisify(execFile);

/**
 * Fault campaign, gateway side (issue 13): a real gateway on SoftHSM2 and two real shims under
 * load — one that reuses its DEK and refreshes its key version every second (NEW_DEK=false), one
 * that wraps a DEK for every Encrypt (NEW_DEK=true) — while one fault at a time is injected.
 * Each fault prints a `FAULT` line: what was injected, the failures the load saw by gRPC code,
 * the recovery time, wrong plaintexts and undecryptable ciphertexts (both must be 0), and audited
 * key operations answered after their caller's deadline (must be 0).
 */
describe('faults: the gateway under a bad day', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-faults-gw-'));
  const services: Service[] = [];
  const loads: KmsLoad[] = [];
  let prepared: PreparedStack;
  let gateway: { service: Service; url: string };
  let cached: KmsLoad;
  let fresh: KmsLoad;

  before(async () => {
    prepared = await prepareStack({ home, gatewayPort: 0, hsm: 'softhsm2' });
    gateway = await startGatewayProcess(prepared);
    services.push(gateway.service);
    for (const [name, newDek] of [
      ['cached', false],
      ['fresh', true],
    ] as const) {
      const socket = join(home, name, 'kms.sock');
      const cfg = join(home, `${name}.yaml`);
      writeShimConfig(prepared, cfg, {
        gatewayUrls: [gateway.url],
        socket,
        healthzPort: 0,
        newDek,
        refreshSeconds: 1,
      });
      services.push((await startShimProcess(cfg, { name: `shim-${name}` })).service);
      await waitHealthy(socket);
      const load = new KmsLoad({ socket, concurrency: 4, decryptOld: true, paceMs: 10 }).start();
      loads.push(load);
      if (newDek) fresh = load;
      else cached = load;
    }
    await new Promise((r) => setTimeout(r, 500));
  });

  after(async () => {
    for (const l of loads) {
      await l.stop();
      l.close();
    }
    for (const s of services.reverse()) await s.stop();
  });

  /** Stops nothing: checks the whole run so far (every ciphertext still decrypts, the audit log). */
  const verdict = async (fault: string, injected: string, since: number, until: number, extra?: object) => {
    const failures: Record<string, number> = {};
    for (const l of loads) {
      for (const [k, v] of Object.entries(l.failures(since))) failures[k] = (failures[k] ?? 0) + v;
    }
    let undecryptable = 0;
    let wrong = 0;
    for (const l of loads) {
      const v = await l.verifyAll();
      undecryptable += v.undecryptable;
      wrong += v.wrong + l.wrong;
    }
    const report = {
      fault,
      injected,
      failures,
      recoveryMs: Math.max(...loads.map((l) => l.recoveryMs(until))),
      wrongPlaintexts: wrong,
      undecryptable,
      auditedAfterDeadline: auditedAfterDeadline(readAuditRecords(prepared.auditDir)),
      ...(extra ? { extra: { ...extra } } : {}),
    };
    printFault(report);
    assert.equal(report.wrongPlaintexts, 0, 'a wrong plaintext was returned');
    assert.equal(report.undecryptable, 0, 'a ciphertext the shim answered could not be decrypted later');
    assert.equal(report.auditedAfterDeadline, 0, 'a key operation was recorded after its deadline');
    return report;
  };

  it('an intruder certificate floods /identity/token with a wrong API key: the audit log and the clusters do not notice', async () => {
    const pki = ensurePki(join(home, 'pki'), 'intruder');
    const ca = readFileSync(pki.caFile);
    const agent = new Agent({
      keepAlive: true,
      maxSockets: 16,
      ca,
      cert: readFileSync(pki.clientCertFile),
      key: readFileSync(pki.clientKeyFile),
    });
    const before = readAuditRecords(prepared.auditDir).length;
    const since = Date.now();
    const statuses: Record<string, number> = {};
    const body = 'grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey=kg_guess';
    const one = () =>
      new Promise<void>((resolve) => {
        const req = request(
          `${gateway.url}/identity/token`,
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
    const refusals = readAuditRecords(prepared.auditDir)
      .slice(before)
      .filter((r) => r.operation === 'token.issue' && r.outcome !== 'success');
    const report = await verdict(
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
    const port = new URL(gateway.url).port;
    const pid = gateway.service.child.pid;
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
    const report = await verdict(
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
    const store = join(prepared.home, 'keys.json');
    const good = readFileSync(store);
    const cacheBefore = await shimCacheSize('shim-cached');
    const since = Date.now();
    writeFileSync(store, good.subarray(0, 20));
    await new Promise((r) => setTimeout(r, 2000));
    writeFileSync(store, good);
    const until = Date.now();
    await new Promise((r) => setTimeout(r, 2500));
    const report = await verdict(
      'store-truncated',
      'keys.json cut to 20 bytes for 2 s, then restored',
      since,
      until,
      {
        cachedShimFailures: cached.failures(since),
        freshShimFailures: fresh.failures(since),
        cachedShimDekCache: { before: cacheBefore, after: await shimCacheSize('shim-cached') },
      },
    );
    // Only transient failures (the gateway answered 503), never a key state (FAILED_PRECONDITION).
    for (const code of Object.keys(report.failures))
      assert.ok(['UNAVAILABLE', 'DEADLINE_EXCEEDED'].includes(code), code);
    assert.deepEqual(cached.failures(since), {}, 'the shim serving from its cache failed');
    assert.ok(!Number.isNaN(report.recoveryMs), 'never recovered');
  });

  /** keygate_shim_dek_cache_size of a shim process, read from its metrics. */
  async function shimCacheSize(name: string): Promise<number> {
    const svc = services.find((s) => s.name === name);
    const line = svc?.lines.find((l) => l.includes('"msg":"keygate shim started"'));
    const port = line === undefined ? undefined : (JSON.parse(line) as { healthPort: number }).healthPort;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    return Number(/keygate_shim_dek_cache_size\{[^}]*\} (\d+)/.exec(text)?.[1] ?? Number.NaN);
  }
});
