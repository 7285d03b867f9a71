import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startGatewayProcess } from '#devstack/launch.js';
import { REPO_ROOT } from '#devstack/paths.js';
import { prepareStack } from '#devstack/prepare-stack.js';
import type { Service } from '#devstack/processes.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { readAuditRecords } from '../support/e2e-helpers.js';
import { buildGoProgram, goVersion } from '../support/go-build.js';

/** Every case the Go program runs (test/compat/keyprotect-go/cases.go), in its order. */
const CASES = [
  'token',
  'create',
  'get',
  'get-metadata',
  'list-paging',
  'get-keys',
  'list-bad-query',
  'wrap',
  'wrap-generated-dek',
  'unwrap-aad',
  'unwrap-wrong-aad',
  'rotate',
  'versions',
  'unwrap-after-rotate',
  'rewrap',
  'disable',
  'disabled-key-refuses',
  'list-state-filter',
  'enable',
  'delete-minimal',
  'delete-representation',
  'deleted-key',
  'list-deleted',
  'unknown-key',
  'bad-token',
  'no-role-on-instance',
  'library-token-source',
] as const;

const MODULE_DIR = join(REPO_ROOT, 'test/compat/keyprotect-go');

function skipReason(): string | false {
  if (!findSoftHsmModule()) return 'SoftHSM2 not installed';
  // Set by whoever runs `npm test` without Go on purpose (scripts/preflight.mjs says so).
  if (process.env.KEYGATE_TEST_SKIP_GO === '1') return 'KEYGATE_TEST_SKIP_GO=1';
  if (!goVersion())
    return 'Go is not on PATH: IBM keyprotect-go-client test not run (CI has Go; Go >= 1.26.4)';
  return false;
}

/** Runs the program to its end; resolves with its exit code and output lines. */
function runProgram(
  bin: string,
  args: string[],
): Promise<{ code: number | null; out: string[]; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      out += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      err += c;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out: out.split('\n').filter((l) => l !== ''), err }));
  });
}

/**
 * IBM's own Key Protect Go client (github.com/IBM/keyprotect-go-client v0.17.3) against a real
 * gateway: SoftHSM2, mutual TLS with the project's certificates, token mode. The Go program
 * (test/compat/keyprotect-go) compares every answer with Key Protect's and prints a line per case.
 */
describe('compat: IBM keyprotect-go-client against the gateway', { skip: skipReason() }, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-compat-kpgo-'));
  let gateway: Service | undefined;
  let url = '';
  let auditDir = '';
  let args: string[] = [];

  before(async () => {
    const p = await prepareStack({ home, gatewayPort: 0, hsm: 'softhsm2' });
    // The dev identity reads and wraps; these cases also create, rotate, disable and delete.
    const grant = `${p.instanceId}: [wrap, unwrap, rewrap, keys:read]`;
    const text = readFileSync(p.gatewayConfig, 'utf8');
    assert.ok(text.includes(grant), 'the dev stack config no longer grants the roles this test extends');
    const config = join(home, 'gateway-admin.yaml');
    // keyprotect-go-client's UnwrapV2 returns Key Protect's rewrapped ciphertext (case
    // unwrap-after-rotate): keygate gives it only with keys.rewrapOnUnwrap, off by default.
    assert.ok(!/^keys:/m.test(text), 'the dev stack config now has a keys: section; merge into it');
    writeFileSync(
      config,
      `${text.replace(grant, `${p.instanceId}: [wrap, unwrap, rewrap, keys:admin]`)}\nkeys:\n  rewrapOnUnwrap: true\n`,
    );
    const gw = await startGatewayProcess(p, { config });
    gateway = gw.service;
    url = gw.url;
    auditDir = p.auditDir;
    args = [
      '-url',
      url,
      '-instance',
      p.instanceId,
      '-other-instance',
      'kpgo-no-roles',
      '-ca',
      p.pki.caFile,
      '-cert',
      p.pki.clientCertFile,
      '-key',
      p.pki.clientKeyFile,
      '-api-key-file',
      p.apiKeyFile,
    ];
  });
  after(async () => {
    await gateway?.stop();
  });

  it('answers every case as Key Protect does', async () => {
    const bin = buildGoProgram(MODULE_DIR);
    const r = await runProgram(bin, args);
    const report = [...r.out, r.err].join('\n');
    for (const c of CASES) {
      assert.ok(r.out.includes(`ok ${c}`), `case ${c} did not pass:\n${report}`);
    }
    assert.equal(r.out.filter((l) => l.startsWith('ok ')).length, CASES.length, report);
    assert.equal(r.code, 0, report);

    // The new read routes are audited like GET key, each with its own operation.
    const records = readAuditRecords(auditDir);
    for (const op of ['key.metadata', 'key.versions', 'key.list', 'key.destroy']) {
      assert.ok(
        records.some((x) => x.operation === op && x.outcome === 'success'),
        `no successful ${op} audit record`,
      );
    }
  });
});
