import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeygateError, SHIM_LIMITS, ShimAlg, systemRandom } from '@keygate/shared';
import { deriveDataKey, sealShim } from '@keygate/shared/crypto';
import { testCoreOptions } from '../testing/core-options.js';
import { FakeGatewayClient } from '../testing/fake-gateway-client.js';
import { KmsCore, type KmsCoreOptions } from './kms-core.js';

const V2 = SHIM_LIMITS.v2MaxCiphertextBytes;

function setup(over: Partial<KmsCoreOptions> = {}) {
  const gateway = new FakeGatewayClient();
  const clock = {
    t: 1_000_000,
    now() {
      return new Date(this.t);
    },
  };
  const core = new KmsCore(testCoreOptions(gateway, { clock, ...over }));
  return { core, gateway, clock };
}

/** `call` throws (synchronously, or by rejecting) a KeygateError with `code`. */
async function rejectsWith(call: () => unknown, code: string): Promise<void> {
  await assert.rejects(
    async () => call(),
    (err: unknown) => err instanceof KeygateError && err.code === code,
  );
}

describe('KmsCore', () => {
  it('is not healthy and has no key_id before the first wrap; refresh sets both', async () => {
    const { core, gateway } = setup();
    assert.notEqual(core.status().healthz, 'ok');
    assert.equal(core.status().keyId, '');
    await core.refresh();
    assert.deepEqual(core.status(), { healthz: 'ok', keyId: `keygate/inst/crk/${gateway.currentVersion}` });
  });

  it('keeps no DEK that a wrap or unwrap in flight brings back after close', async () => {
    const { core, gateway } = setup();
    await core.refresh();
    const { ciphertext, keyId } = await core.encrypt(Buffer.from('s'), V2);
    const cold = new KmsCore(testCoreOptions(gateway));
    gateway.delayMs = 30;
    // A refresh (wrap) and a Decrypt's unwrap are on their way when the shim closes.
    const refresh = cold.refresh();
    const decrypt = Promise.resolve(cold.decrypt(ciphertext, keyId, V2));
    cold.close();
    await refresh;
    await rejectsWith(() => decrypt, 'NOT_READY');
    assert.deepEqual(
      [cold.stats().cacheSize, cold.stats().currentDekUses, cold.status().healthz],
      [0, 0, 'shutting down'],
      'nothing cached, no current DEK after close',
    );
  });

  it('round-trips, reports the Status key_id on Encrypt, and stays under the v2 limit', async () => {
    for (const alg of [ShimAlg.A256CBC_HS512, ShimAlg.A256GCM]) {
      const { core } = setup({ alg });
      await core.refresh();
      const seed = systemRandom(32);
      const { ciphertext, keyId } = await core.encrypt(seed, V2);
      assert.equal(keyId, core.status().keyId);
      assert.ok(ciphertext.length <= V2);
      assert.deepEqual(await core.decrypt(ciphertext, keyId, V2), seed);
      assert.deepEqual(await core.decrypt(ciphertext, undefined, V2), seed);
    }
  });

  it('reuses one DEK (NEW_DEK=false): 1,000 decrypts on a fresh node need one unwrap', async () => {
    const a = setup();
    await a.core.refresh();
    const cts = await Promise.all(
      Array.from({ length: 1000 }, (_, i) => a.core.encrypt(Buffer.from(`s${i}`), V2)),
    );
    assert.equal(a.gateway.wrapCalls, 1);
    const b = new KmsCore(testCoreOptions(a.gateway));
    for (const c of cts) await b.decrypt(c.ciphertext, c.keyId, V2);
    assert.equal(a.gateway.unwrapCalls, 1);
  });

  it('shares one unwrap among 64 concurrent decrypts of a cold DEK', async () => {
    const a = setup();
    await a.core.refresh();
    const c = await a.core.encrypt(Buffer.from('seed'), V2);
    a.gateway.delayMs = 20;
    const b = new KmsCore(testCoreOptions(a.gateway));
    const out = await Promise.all(Array.from({ length: 64 }, () => b.decrypt(c.ciphertext, c.keyId, V2)));
    assert.ok(out.every((p) => p.toString() === 'seed'));
    assert.equal(a.gateway.unwrapCalls, 1);
  });

  it('shares one unwrap even with the cache disabled, and then unwraps per call', async () => {
    const { core, gateway } = setup({ cacheTtlMs: 0 });
    await core.refresh();
    const c = await core.encrypt(Buffer.from('x'), V2);
    gateway.delayMs = 10;
    await Promise.all(Array.from({ length: 8 }, () => core.decrypt(c.ciphertext, c.keyId, V2)));
    assert.equal(gateway.unwrapCalls, 1);
    await core.decrypt(c.ciphertext, c.keyId, V2);
    assert.equal(gateway.unwrapCalls, 2);
  });

  it('rejects tampered, truncated, empty and random ciphertexts and unknown key_ids', async () => {
    const { core } = setup();
    await core.refresh();
    const { ciphertext, keyId } = await core.encrypt(Buffer.from('seed'), V2);
    const tampered = Buffer.from(ciphertext);
    tampered[tampered.length - 1] = (tampered[tampered.length - 1] ?? 0) ^ 1;
    await rejectsWith(() => core.decrypt(tampered, keyId, V2), 'UNPROCESSABLE_CIPHERTEXT_ERR');
    await rejectsWith(
      () => core.decrypt(ciphertext.subarray(0, 40), keyId, V2),
      'UNPROCESSABLE_CIPHERTEXT_ERR',
    );
    await rejectsWith(() => core.decrypt(Buffer.alloc(0), keyId, V2), 'UNPROCESSABLE_CIPHERTEXT_ERR');
    await rejectsWith(() => core.decrypt(systemRandom(200), keyId, V2), 'UNPROCESSABLE_CIPHERTEXT_ERR');
    await rejectsWith(() => core.decrypt(ciphertext, 'someone-else', V2), 'KEY_ID_MISMATCH_ERR');
    await rejectsWith(() => core.decrypt(ciphertext, `${keyId}0`, V2), 'KEY_ID_MISMATCH_ERR');
    // A tampered wrapped DEK goes to the gateway, which refuses it; the shim keeps working.
    const wrappedFlip = Buffer.from(ciphertext);
    const at = 7 + Buffer.byteLength(keyId) + 20;
    wrappedFlip[at] = (wrappedFlip[at] ?? 0) ^ 1;
    await rejectsWith(() => core.decrypt(wrappedFlip, keyId, V2), 'UNPROCESSABLE_CIPHERTEXT_ERR');
    assert.equal(core.status().healthz, 'ok');
    assert.equal((await core.decrypt(ciphertext, keyId, V2)).toString(), 'seed');
  });

  it('keeps serving from cache through an outage (NEW_DEK=false) and recovers', async () => {
    const { core, gateway } = setup();
    await core.refresh();
    const before = await core.encrypt(Buffer.from('a'), V2);
    gateway.down = true;
    await core.refresh();
    // Still serving from the current DEK: Status stays ok (apiserver keeps writing), degraded says why.
    assert.deepEqual(core.status(), { healthz: 'ok', keyId: before.keyId, degraded: 'gateway unavailable' });
    assert.equal(core.status().keyId, before.keyId, 'key_id unchanged through the outage');
    const during = await core.encrypt(Buffer.from('b'), V2);
    assert.equal((await core.decrypt(during.ciphertext, during.keyId, V2)).toString(), 'b');
    assert.equal((await core.decrypt(before.ciphertext, before.keyId, V2)).toString(), 'a');
    gateway.down = false;
    await core.refresh();
    assert.equal(core.status().healthz, 'ok');
  });

  it('fails Encrypt with GATEWAY_UNAVAILABLE when NEW_DEK=true and the gateway is away', async () => {
    const { core, gateway } = setup({ newDekPerEncrypt: true });
    await core.refresh();
    const c = await core.encrypt(Buffer.from('a'), V2);
    gateway.down = true;
    await rejectsWith(() => core.encrypt(Buffer.from('b'), V2), 'GATEWAY_UNAVAILABLE');
    assert.equal((await core.decrypt(c.ciphertext, c.keyId, V2)).toString(), 'a');
    // Every Encrypt needs the gateway here, so Status tells the truth: not healthy.
    assert.equal(core.status().healthz, 'gateway unavailable');
  });

  it('rotates the DEK past its use count and age, and fails when it cannot', async () => {
    const { core, gateway, clock } = setup({ dekLimits: { maxUses: 3, maxAgeMs: 1000 } });
    await core.refresh();
    for (let i = 0; i < 3; i++) await core.encrypt(Buffer.from('x'), V2);
    assert.equal(gateway.wrapCalls, 1);
    await core.encrypt(Buffer.from('x'), V2);
    assert.equal(gateway.wrapCalls, 2);
    clock.t += 1000;
    gateway.down = true;
    await rejectsWith(() => core.encrypt(Buffer.from('x'), V2), 'GATEWAY_UNAVAILABLE');
    // The current DEK is past its age and no new one can be wrapped: Status is not healthy.
    assert.equal(core.status().healthz, 'gateway unavailable');
  });

  it('changes the key_id on rotation and still decrypts older ciphertexts', async () => {
    const { core, gateway } = setup();
    await core.refresh();
    const old = await core.encrypt(Buffer.from('old'), V2);
    const seen: string[] = [];
    gateway.rotate();
    await core.refresh();
    const now = core.status().keyId;
    assert.notEqual(now, old.keyId);
    seen.push(now);
    const fresh = await core.encrypt(Buffer.from('new'), V2);
    assert.equal(fresh.keyId, now);
    assert.equal((await core.decrypt(old.ciphertext, old.keyId, V2)).toString(), 'old');
    await core.refresh();
    assert.equal(core.status().keyId, now, 'stable while the version does not change');
  });

  it('reports a destroyed root key and drops every cached DEK', async () => {
    const { core, gateway } = setup();
    await core.refresh();
    const c = await core.encrypt(Buffer.from('a'), V2);
    gateway.failWith = new KeygateError('KEY_DELETED_ERR');
    await core.refresh();
    assert.equal(core.status().healthz, 'root key destroyed');
    await rejectsWith(() => core.decrypt(c.ciphertext, c.keyId, V2), 'KEY_DELETED_ERR');
  });

  it('keeps every DEK through transient faults, including a missing HSM object and a bare status', async () => {
    const { core, gateway } = setup();
    await core.refresh();
    const c = await core.encrypt(Buffer.from('a'), V2);
    const unwraps = gateway.unwrapCalls;
    for (const code of ['GATEWAY_UNAVAILABLE', 'GATEWAY_TIMEOUT', 'GATEWAY_PROTOCOL_ERR'] as const) {
      gateway.failWith = new KeygateError(code, { detail: { gatewayCode: 'HSM_KEY_OBJECT_MISSING' } });
      await core.refresh();
      assert.equal((await core.decrypt(c.ciphertext, c.keyId, V2)).toString(), 'a', code);
      assert.equal((await core.encrypt(Buffer.from('b'), V2)).keyId, c.keyId, code);
    }
    assert.equal(gateway.unwrapCalls, unwraps, 'the cached DEK was never dropped');
  });

  it('stops using a disabled root key without asking the gateway, and a re-enable restores service', async () => {
    const { core, gateway } = setup();
    await core.refresh();
    const c = await core.encrypt(Buffer.from('a'), V2);
    gateway.failWith = new KeygateError('KEY_ACTION_INVALID_STATE_ERR');
    await core.refresh();
    assert.equal(core.status().healthz, 'root key not active');
    const calls = gateway.wrapCalls + gateway.unwrapCalls;
    await rejectsWith(() => core.encrypt(Buffer.from('b'), V2), 'KEY_ACTION_INVALID_STATE_ERR');
    await rejectsWith(() => core.decrypt(c.ciphertext, c.keyId, V2), 'KEY_ACTION_INVALID_STATE_ERR');
    assert.equal(gateway.wrapCalls + gateway.unwrapCalls, calls, 'refused without a gateway call');
    assert.deepEqual(core.stats().cacheSize, 0, 'every cached DEK was dropped');
    gateway.failWith = undefined;
    await core.refresh(); // the background probe: a wrap that succeeds proves the key active again
    assert.equal(core.status().healthz, 'ok');
    assert.equal((await core.decrypt(c.ciphertext, c.keyId, V2)).toString(), 'a');
    assert.equal((await core.encrypt(Buffer.from('b'), V2)).keyId, c.keyId);
  });

  it('refuses a DEK shorter than 32 bytes (DEK_TOO_SHORT_ERR) and stays healthy', async () => {
    const { core, gateway } = setup();
    await core.refresh();
    const keyId = core.status().keyId;
    // A 16-byte DEK wrapped under the root key: never made by the shim, refused for 256-bit modes.
    const { wrappedDek } = await gateway.wrap(Buffer.alloc(16, 7), ['keygate-shim', 'crk']);
    const ciphertext = sealShim({
      alg: ShimAlg.A256CBC_HS512,
      keyId,
      wrappedDek,
      dataKey: Buffer.alloc(64, 1),
      plaintext: Buffer.from('seed'),
      random: systemRandom,
      maxBytes: V2,
    });
    await rejectsWith(() => core.decrypt(ciphertext, keyId, V2), 'DEK_TOO_SHORT_ERR');
    assert.equal(core.status().healthz, 'ok');
    assert.throws(
      () => deriveDataKey(Buffer.alloc(31), ShimAlg.A256GCM),
      (e: unknown) => e instanceof KeygateError && e.code === 'DEK_TOO_SHORT_ERR',
    );
  });

  it('passes a deep round trip and refuses work after close', async () => {
    const { core, gateway } = setup();
    await core.roundTrip();
    assert.equal(gateway.unwrapCalls, 1);
    core.close();
    await rejectsWith(() => core.encrypt(Buffer.from('a'), V2), 'NOT_READY');
  });
});
