import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KmsClient } from '@keygate/shim';
import { type DevStack, startDevStack } from '#devstack/devstack.js';
import { startGatewayProcess, startShimProcess, waitHealthy } from '#devstack/launch.js';
import { GATEWAY_CLI } from '#devstack/paths.js';
import { rotateRootKey } from '#devstack/prepare-stack.js';
import type { Service } from '#devstack/processes.js';
import { writeShimConfig } from '#devstack/shim-config.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { gatewayConfigOnPort, readAuditRecords } from '../support/e2e-helpers.js';
import { kpSession } from '../support/kp-http.js';

/**
 * The whole stack as separate processes: gateway CLI on SoftHSM2 with real mTLS, access tokens
 * and the audit log; shim CLIs on real UNIX sockets; a client that behaves like kube-apiserver.
 * Every plaintext that comes back is compared with what went in, and the counts are printed.
 */
describe('e2e: gateway + shims as processes', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-e2e-'));
  let stack: DevStack;
  const extra: Service[] = [];
  /** When the first gateway was SIGKILLed (epoch ms, before and after). */
  const killWindow = { from: 0, to: 0 };
  /** Every gateway process of the run, to count the key operations they answered. */
  const gateways: Service[] = [];
  const clients: KmsClient[] = [];
  const counts = { encrypts: 0, decrypts: 0, wrong: 0, undecryptable: 0 };
  /** Every ciphertext made so far, with its plaintext and key_id, re-checked at the end. */
  const made: { ct: Buffer; pt: Buffer; keyId: string; v: 1 | 2 }[] = [];

  const client = (socket: string) => {
    const c = new KmsClient(socket);
    clients.push(c);
    return c;
  };
  async function seed(c: KmsClient): Promise<string> {
    const pt = randomBytes(32);
    const r = await c.encrypt(pt, `uid-${counts.encrypts}`);
    counts.encrypts++;
    made.push({ ct: r.ciphertext, pt, keyId: r.key_id, v: 2 });
    assert.ok(r.ciphertext.length <= 1024);
    return r.key_id;
  }
  async function decryptAll(c: KmsClient, list = made): Promise<void> {
    for (const m of list) {
      counts.decrypts++;
      try {
        const got = m.v === 2 ? (await c.decrypt(m.ct, m.keyId)).plaintext : (await c.v1Decrypt(m.ct)).plain;
        if (!got.equals(m.pt)) counts.wrong++;
      } catch {
        counts.undecryptable++;
      }
    }
  }

  before(async () => {
    stack = await startDevStack({
      home,
      gatewayPort: 0,
      healthzPort: 0,
      hsm: 'softhsm2',
      keyIdRefreshSeconds: 1,
      // Every answered request as a log line: the audit test below matches them to audit records.
      logRequests: true,
    });
    gateways.push(stack.gateway);
  });

  after(async () => {
    for (const c of clients) c.close();
    for (const s of extra) await s.stop();
    await stack?.stop();
    console.log(
      `e2e counts: ${counts.encrypts} encrypts, ${counts.decrypts} decrypts, ${counts.wrong} wrong plaintexts, ${counts.undecryptable} failed decrypts`,
    );
  });

  it('v2: Status, one seed Encrypt, many Decrypts, as kube-apiserver does', async () => {
    const c = client(stack.info.socket);
    const status = await c.status();
    assert.equal(status.healthz, 'ok');
    assert.equal(status.version, 'v2');
    assert.equal(await seed(c), status.key_id);
    for (let i = 0; i < 100; i++) await decryptAll(c, made.slice(-1));
    assert.equal(counts.wrong, 0);
    assert.equal(counts.undecryptable, 0);
  });

  it('v1: an Encrypt per write, and Decrypts', async () => {
    const c = client(stack.info.socket);
    assert.equal((await c.v1Version()).version, 'v1beta1');
    for (let i = 0; i < 20; i++) {
      const pt = randomBytes(32);
      const r = await c.v1Encrypt(pt);
      counts.encrypts++;
      made.push({ ct: r.cipher, pt, keyId: '', v: 1 });
    }
    await decryptAll(c);
    assert.equal(counts.wrong + counts.undecryptable, 0);
  });

  it('two shims on one gateway report the same key_id and decrypt each other’s ciphertexts', async () => {
    const socket = join(home, 'second', 'kms.sock');
    const cfg = join(home, 'second.yaml');
    writeShimConfig(stack.prepared, cfg, {
      gatewayUrls: [stack.info.gatewayUrl],
      socket,
      healthzPort: 0,
      refreshSeconds: 1,
    });
    extra.push((await startShimProcess(cfg, { name: 'shim-2' })).service);
    const keyId2 = await waitHealthy(socket);
    const c1 = client(stack.info.socket);
    const c2 = client(socket);
    assert.equal(keyId2, (await c1.status()).key_id);
    await seed(c2);
    await decryptAll(c1);
    await decryptAll(c2);
    assert.equal(counts.wrong + counts.undecryptable, 0);
  });

  it('root key rotation through the gateway CLI: new key_id on Status, new seed, old ciphertexts still decrypt', async () => {
    const c = client(stack.info.socket);
    const before = (await c.status()).key_id;
    rotateRootKey(stack.prepared);
    const deadline = Date.now() + 20_000;
    let now = before;
    while (now === before && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      now = (await c.status()).key_id;
    }
    assert.notEqual(now, before, 'Status key_id did not change after rotation');
    assert.equal(await seed(c), now);
    await decryptAll(c);
    assert.equal(counts.wrong + counts.undecryptable, 0);
  });

  it("the dev stack's ops-admin identity runs the key lifecycle over the API; the cluster identity may not", async () => {
    const i = stack.info;
    const as = (certFile: string, keyFile: string, apiKeyFile: string) =>
      kpSession({
        url: i.gatewayUrl,
        caFile: i.caFile,
        certFile,
        keyFile,
        apiKeyFile,
        instance: i.instanceId,
      });
    const admin = await as(i.adminCertFile, i.adminKeyFile, i.adminApiKeyFile);
    const cluster = await as(i.clientCertFile, i.clientKeyFile, i.apiKeyFile);
    try {
      const create = {
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'ops-admin-try' }],
      };
      assert.equal((await cluster.call('POST', '/api/v2/keys', create)).status, 403);
      const made = await admin.call('POST', '/api/v2/keys', create);
      assert.equal(made.status, 201, JSON.stringify(made.body));
      const id = String((made.body?.resources as { id: string }[] | undefined)?.[0]?.id);
      assert.equal((await cluster.call('POST', `/api/v2/keys/${id}/actions/rotate`)).status, 403);
      for (const action of ['rotate', 'disable', 'enable']) {
        const r = await admin.call('POST', `/api/v2/keys/${id}/actions/${action}`);
        assert.ok(r.status === 204 || r.status === 200, `${action}: ${r.status}`);
      }
      const key = await admin.call('GET', `/api/v2/keys/${id}`);
      assert.equal((key.body?.resources as { versions: unknown[] }[] | undefined)?.[0]?.versions.length, 2);
      const gone = await admin.call('DELETE', `/api/v2/keys/${id}`);
      assert.ok(gone.status === 204 || gone.status === 200, `delete: ${gone.status}`);
      assert.equal((await admin.call('POST', `/api/v2/keys/${id}/actions/rotate`)).status, 410);
    } finally {
      admin.close();
      cluster.close();
    }
  });

  it('gateway killed with SIGKILL: cached decrypts and NEW_DEK=false encrypts go on; restarted, the shim recovers', async () => {
    const c = client(stack.info.socket);
    killWindow.from = Date.now();
    await stack.gateway.kill();
    killWindow.to = Date.now();
    await decryptAll(c);
    const keyId = await seed(c);
    assert.equal(counts.wrong + counts.undecryptable, 0);
    // Back on the same port: the running shim must recover by itself, without a restart.
    const port = new URL(stack.info.gatewayUrl).port;
    const cfg = gatewayConfigOnPort(stack.prepared.gatewayConfig, port, join(home, 'gateway-restarted.yaml'));
    const restarted = await startGatewayProcess(stack.prepared, { name: 'gateway-2', config: cfg });
    extra.push(restarted.service);
    gateways.push(restarted.service);
    assert.equal(await waitHealthy(stack.info.socket), keyId);
    await seed(c);
    await decryptAll(c);
    assert.equal(counts.wrong, 0, 'a wrong plaintext was returned');
    assert.equal(counts.undecryptable, 0, 'a ciphertext could not be decrypted later');
  });

  it('the audit chain verifies, with one record per key operation the gateways answered', () => {
    // The gateway audits a key operation before it answers (a lost record would be worse than a
    // lost answer), so one that SIGKILL cut between the two has a record and no answer: the shims'
    // key_id refresh (every second here) can be out at the kill. Such records, and only such, may
    // be unanswered, and only from the moments of the kill.
    const answered = gateways
      .flatMap((g) => g.lines)
      .map((l) => {
        try {
          return JSON.parse(l) as { msg?: string; path?: string; status?: number; reqId?: string };
        } catch {
          return {};
        }
      })
      .filter(
        (l) =>
          l.msg === 'request' && l.status === 200 && /\/actions\/(wrap|unwrap|rewrap)$/.test(l.path ?? ''),
      )
      .map((l) => l.reqId);
    const records = readAuditRecords(stack.prepared.auditDir).filter(
      (r) => ['wrap', 'unwrap', 'rewrap'].includes(r.operation ?? '') && r.outcome === 'success',
    );
    const audited = new Set(records.map((r) => r.requestId));
    console.log(`e2e audit: ${answered.length} key operations answered with 200, ${audited.size} audited`);
    assert.ok(answered.length > 0);
    for (const id of answered) assert.ok(audited.has(id), `answered request ${id} has no audit record`);
    assert.equal(new Set(answered).size, answered.length, 'one answer per request id');
    const unanswered = records.filter((r) => !answered.includes(r.requestId));
    for (const r of unanswered) {
      const at = Date.parse(String(r.time));
      assert.ok(
        at >= killWindow.from - 5000 && at <= killWindow.to,
        `audited request ${r.requestId} at ${r.time} has no answer and was not cut by the kill`,
      );
    }
    assert.ok(unanswered.length <= 4, `${unanswered.length} audited key operations without an answer`);
    const out = execFileSync(
      process.execPath,
      [GATEWAY_CLI, 'audit', 'verify', stack.prepared.auditDir, '--key', stack.prepared.auditPublicKeyFile],
      { encoding: 'utf8' },
    );
    assert.match(out, /OK/);
  });
});
