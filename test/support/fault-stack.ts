import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGatewayProcess, startShimProcess, waitHealthy } from '#devstack/launch.js';
import { type PreparedStack, prepareStack } from '#devstack/prepare-stack.js';
import type { Service } from '#devstack/processes.js';
import { writeShimConfig } from '#devstack/shim-config.js';
import { gatewayConfigOnPort, readAuditRecords } from './e2e-helpers.js';
import { auditedAfterDeadline, type FaultReport, KmsLoad, printFault } from './load.js';

/** A shim of a fault stack and the load on it. */
export interface LoadedShim {
  readonly name: string;
  readonly service: Service;
  readonly healthPort: number;
  readonly load: KmsLoad;
}

/**
 * The stack every fault test runs on: a real gateway process on SoftHSM2, and two real shims
 * under closed-loop load — `cached` reuses its DEK and refreshes its key version every second
 * (NEW_DEK=false), `fresh` wraps a DEK for every Encrypt (NEW_DEK=true) — so a fault shows both
 * on the path that needs the gateway for every call and on the one that should not notice it.
 */
export class FaultStack {
  readonly services: Service[] = [];
  readonly shims: LoadedShim[] = [];
  gateway!: { service: Service; url: string };
  prepared!: PreparedStack;
  readonly home: string;

  constructor(prefix: string) {
    this.home = mkdtempSync(join(tmpdir(), prefix));
  }

  /**
   * `gatewayConfig` edits the gateway's configuration text before it starts (e.g. to load the
   * PKCS#11 interposer in place of SoftHSM2); the stack's key is made before, on SoftHSM2 itself.
   */
  async start(
    shimKeys: Record<string, string | number> = {},
    opts: { gatewayConfig?: (text: string) => string } = {},
  ): Promise<void> {
    this.prepared = await prepareStack({ home: this.home, gatewayPort: 0, hsm: 'softhsm2' });
    if (opts.gatewayConfig !== undefined) {
      const edited = opts.gatewayConfig(readFileSync(this.prepared.gatewayConfig, 'utf8'));
      writeFileSync(this.prepared.gatewayConfig, edited);
    }
    this.gateway = await startGatewayProcess(this.prepared);
    this.services.push(this.gateway.service);
    for (const [name, newDek] of [
      ['cached', false],
      ['fresh', true],
    ] as const) {
      const socket = join(this.home, name, 'kms.sock');
      const cfg = join(this.home, `${name}.yaml`);
      writeShimConfig(this.prepared, cfg, {
        gatewayUrls: [this.gateway.url],
        socket,
        healthzPort: 0,
        newDek,
        refreshSeconds: 1,
        extraKeygate: shimKeys,
      });
      const started = await startShimProcess(cfg, { name: `shim-${name}` });
      this.services.push(started.service);
      await waitHealthy(socket);
      const load = new KmsLoad({ socket, concurrency: 4, decryptOld: true, paceMs: 10 }).start();
      this.shims.push({ name, service: started.service, healthPort: started.healthPort, load });
    }
    await new Promise((r) => setTimeout(r, 500));
  }

  shim(name: 'cached' | 'fresh'): LoadedShim {
    const s = this.shims.find((x) => x.name === name);
    if (s === undefined) throw new Error(`no shim ${name}`);
    return s;
  }

  /** Starts the gateway again on its old port (after it was stopped or killed). */
  async restartGateway(name: string): Promise<void> {
    const port = new URL(this.gateway.url).port;
    const config = gatewayConfigOnPort(
      this.prepared.gatewayConfig,
      port,
      join(this.home, `gateway-${name}.yaml`),
    );
    this.gateway = await startGatewayProcess(this.prepared, { name, config });
    this.services.push(this.gateway.service);
  }

  /** keygate_shim_dek_cache_size of a shim, from its metrics. */
  async cacheSize(name: 'cached' | 'fresh'): Promise<number> {
    const text = await (await fetch(`http://127.0.0.1:${this.shim(name).healthPort}/metrics`)).text();
    return Number(/keygate_shim_dek_cache_size\{[^}]*\} (\d+)/.exec(text)?.[1] ?? Number.NaN);
  }

  /**
   * The verdict on the run so far, once every load has recovered (or 30 s have passed): failures
   * since `since` by code, the recovery after `until`, every ciphertext decrypted again, the audit
   * log checked for operations answered after their deadline. Prints the FAULT line and asserts
   * the three zeros.
   */
  async verdict(
    fault: string,
    injected: string,
    since: number,
    until: number,
    extra?: Record<string, unknown>,
  ): Promise<FaultReport> {
    for (const s of this.shims) await s.load.waitRecovered(until);
    const failures: Record<string, number> = {};
    for (const s of this.shims) {
      for (const [k, v] of Object.entries(s.load.failures(since))) failures[k] = (failures[k] ?? 0) + v;
    }
    let undecryptable = 0;
    let wrong = 0;
    for (const s of this.shims) {
      const v = await s.load.verifyAll();
      undecryptable += v.undecryptable;
      wrong += v.wrong + s.load.wrong;
    }
    const report: FaultReport = {
      fault,
      injected,
      failures,
      recoveryMs: Math.max(...this.shims.map((s) => s.load.recoveryMs(until))),
      wrongPlaintexts: wrong,
      undecryptable,
      auditedAfterDeadline: auditedAfterDeadline(readAuditRecords(this.prepared.auditDir)),
      ...(extra ? { extra } : {}),
    };
    printFault(report);
    if (Number.isNaN(report.recoveryMs)) {
      for (const s of this.shims) {
        const tail = s.load.outcomes.slice(-5).map((o) => `${o.at - until}:${o.op}:${o.failure ?? 'ok'}`);
        console.log(`  ${s.name} last calls (ms after the fault): ${tail.join(' ')}`);
      }
    }
    assert.equal(report.wrongPlaintexts, 0, 'a wrong plaintext was returned');
    assert.equal(report.undecryptable, 0, 'a ciphertext the shim answered could not be decrypted later');
    assert.equal(report.auditedAfterDeadline, 0, 'a key operation was recorded after its deadline');
    return report;
  }

  async stop(): Promise<void> {
    for (const s of this.shims) {
      await s.load.stop();
      s.load.close();
    }
    for (const s of [...this.services].reverse()) await s.stop();
  }
}
