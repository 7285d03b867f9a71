import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GrpcStatus } from '@keygate/shared';
import { KmsClient } from '@keygate/shim';
import { type DevStack, startDevStack } from '#devstack/devstack.js';
import { rootKeyAction } from '#devstack/prepare-stack.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { readAuditRecords } from '../support/e2e-helpers.js';

/**
 * Issue 13 items 1 and 7 against the real gateway (SoftHSM2, mTLS, its store and audit log), with
 * the root key disabled, enabled and destroyed by `keygate-gateway keys …` as an operator would.
 * A shim with NEW_DEK=false, a current DEK and cached DEKs used to go on encrypting and decrypting
 * after a disable; it must stop within its refresh interval (1 s here), without calling the
 * gateway for each call, and serve again after an enable.
 */
describe('e2e: the shim follows the root key state (disable, enable, destroy)', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-e2e-keystate-'));
  let stack: DevStack;
  let client: KmsClient;

  const keys = (action: 'disable' | 'enable' | 'destroy') => rootKeyAction(stack.prepared, action);
  const keyOps = () =>
    readAuditRecords(stack.prepared.auditDir).filter(
      (r) => r.operation === 'wrap' || r.operation === 'unwrap',
    ).length;
  const codeOf = (p: Promise<unknown>) =>
    p.then(
      () => GrpcStatus.OK,
      (e: { code?: number }) => e.code ?? -1,
    );
  async function until(what: string, cond: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (await cond()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.fail(`not within ${timeoutMs} ms: ${what}`);
  }

  before(async () => {
    stack = await startDevStack({
      home,
      gatewayPort: 0,
      healthzPort: 0,
      hsm: 'softhsm2',
      keyIdRefreshSeconds: 1,
    });
    client = new KmsClient(stack.info.socket);
  });
  after(async () => {
    client?.close();
    await stack?.stop();
  });

  it('stops encrypting and decrypting after a disable, without a gateway call per request, and serves again after an enable', async () => {
    const made = await Promise.all(
      Array.from({ length: 5 }, async () => {
        const pt = randomBytes(32);
        return { pt, r: await client.encrypt(pt) };
      }),
    );
    for (const m of made)
      assert.ok((await client.decrypt(m.r.ciphertext, m.r.key_id)).plaintext.equals(m.pt));

    keys('disable');
    // Noticed by the next gateway call: here the background refresh, every second.
    await until(
      'Encrypt refused after the disable',
      async () => (await codeOf(client.encrypt(randomBytes(8)))) === GrpcStatus.FAILED_PRECONDITION,
    );
    const m0 = made[0] as (typeof made)[number];
    assert.equal(await codeOf(client.decrypt(m0.r.ciphertext, m0.r.key_id)), GrpcStatus.FAILED_PRECONDITION);
    assert.equal((await client.status()).healthz, 'root key not active');
    // Refused from memory: 100 calls cost the gateway at most the refresh probes meanwhile.
    const opsBefore = keyOps();
    for (let i = 0; i < 50; i++) {
      assert.equal(await codeOf(client.encrypt(randomBytes(8))), GrpcStatus.FAILED_PRECONDITION);
      const m = made[i % made.length] as (typeof made)[number];
      assert.equal(await codeOf(client.decrypt(m.r.ciphertext, m.r.key_id)), GrpcStatus.FAILED_PRECONDITION);
    }
    const probes = keyOps() - opsBefore;
    assert.ok(probes < 20, `${probes} wraps/unwraps reached the gateway for 100 refused calls`);

    keys('enable');
    await until('Status ok after the enable', async () => (await client.status()).healthz === 'ok');
    for (const m of made)
      assert.ok((await client.decrypt(m.r.ciphertext, m.r.key_id)).plaintext.equals(m.pt));
    const pt = randomBytes(32);
    const again = await client.encrypt(pt);
    assert.ok((await client.decrypt(again.ciphertext, again.key_id)).plaintext.equals(pt));
  });

  it('drops every DEK once the gateway answers that the key is destroyed', async () => {
    const pt = randomBytes(32);
    const r = await client.encrypt(pt);
    assert.ok((await client.decrypt(r.ciphertext, r.key_id)).plaintext.equals(pt));
    keys('destroy');
    await until(
      'Status reports the destroyed key',
      async () => (await client.status()).healthz === 'root key destroyed',
    );
    assert.equal(await codeOf(client.decrypt(r.ciphertext, r.key_id)), GrpcStatus.FAILED_PRECONDITION);
    assert.equal(await codeOf(client.encrypt(pt)), GrpcStatus.FAILED_PRECONDITION);
  });
});
