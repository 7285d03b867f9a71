import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { systemRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { FakeHsm } from '../../testing/fake-hsm.js';
import { SimulatedLatencyHsm } from './simulated-latency-hsm.js';

const ref = { instance: 'i', crkId: 'k', versionId: 'v' };

describe('SimulatedLatencyHsm (development and benchmarks only)', () => {
  it('passes results through and holds one of `channels` slots for the latency', async () => {
    const hsm = new SimulatedLatencyHsm(new FakeHsm(systemRandom), 20, 2);
    await hsm.generateKey(ref);
    const aad = Buffer.from('aad');
    const sealed = await hsm.encrypt(ref, Buffer.from('dek'), aad);
    const started = performance.now();
    const out = await Promise.all([1, 2, 3, 4].map(() => hsm.decrypt(ref, sealed, aad)));
    const ms = performance.now() - started;
    for (const o of out) assert.equal(o.toString(), 'dek');
    // 4 calls on 2 channels of 20 ms: two waves, so at least ~40 ms.
    assert.ok(ms >= 38, `took ${ms} ms`);
  });

  it('lets errors and missing-object reports through and frees the slot', async () => {
    const inner = new FakeHsm(systemRandom);
    const hsm = new SimulatedLatencyHsm(inner, 1, 1);
    const sealed = { iv: Buffer.alloc(12), ciphertext: Buffer.alloc(4), tag: Buffer.alloc(16) };
    await assert.rejects(
      hsm.decrypt(ref, sealed, Buffer.alloc(0)),
      (e: unknown) => isKeygateError(e) && e.code === 'HSM_KEY_OBJECT_MISSING',
    );
    hsm.reportMissing(ref);
    assert.deepEqual(inner.reported, [ref]);
    await hsm.generateKey(ref);
    const s = await hsm.encrypt(ref, Buffer.from('x'), Buffer.alloc(0));
    assert.equal((await hsm.decrypt(ref, s, Buffer.alloc(0))).toString(), 'x');
  });

  it('refuses nonsense settings', () => {
    assert.throws(() => new SimulatedLatencyHsm(new FakeHsm(systemRandom), 0, 1), RangeError);
    assert.throws(() => new SimulatedLatencyHsm(new FakeHsm(systemRandom), 1, 0), RangeError);
  });
});
