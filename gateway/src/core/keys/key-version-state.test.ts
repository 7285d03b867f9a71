import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { FakeHsm } from '../../testing/fake-hsm.js';
import { MemoryKeyStore } from '../../testing/memory-key-store.js';
import { createKeyService } from './key-service.js';

function setup() {
  const random = seededRandom('key-version-state');
  const store = new MemoryKeyStore();
  let t = Date.parse('2026-01-01T00:00:00Z');
  const clock = {
    now: () => {
      t += 1000;
      return new Date(t);
    },
  };
  return { store, svc: createKeyService({ hsm: new FakeHsm(random), store, clock, random }) };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => isKeygateError(err) && err.code === code);
}

describe('key version disable / enable', () => {
  it('refuses unwrap and rewrap under a disabled version only; enable restores them', async () => {
    const { svc } = setup();
    const key = await svc.create({ instance: 'inst', name: 'crk' });
    const v1 = key.versions[0]?.id as string;
    const aad = ['a'];
    const old = await svc.wrap({ instance: 'inst', keyId: key.id, plaintext: Buffer.alloc(32, 1), aad });
    const rotated = await svc.rotate('inst', key.id);
    const v2 = rotated.versions[1]?.id as string;
    const disabled = await svc.disableVersion('inst', key.id, v1);
    assert.ok(disabled.versions[0]?.disabledAt !== undefined);
    assert.equal(disabled.versions[1]?.disabledAt, undefined);
    const blob = { instance: 'inst', keyId: key.id, ciphertext: old.ciphertext, aad };
    await rejectsWith(svc.unwrap(blob), 'KEY_VERSION_DISABLED_ERR');
    await rejectsWith(svc.rewrap(blob), 'KEY_VERSION_DISABLED_ERR');
    // The key itself is fine: new wraps and their unwraps go on under v2.
    const fresh = await svc.wrap({ instance: 'inst', keyId: key.id, plaintext: Buffer.alloc(32, 2), aad });
    assert.equal(fresh.keyVersionId, v2);
    const u = await svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: fresh.ciphertext, aad });
    assert.deepEqual(u.plaintext, Buffer.alloc(32, 2));
    // Twice is no change.
    assert.deepEqual((await svc.disableVersion('inst', key.id, v1)).versions, disabled.versions);
    const enabled = await svc.enableVersion('inst', key.id, v1);
    assert.equal(enabled.versions[0]?.disabledAt, undefined);
    assert.deepEqual((await svc.unwrap(blob)).plaintext, Buffer.alloc(32, 1));
  });

  it('refuses to disable the current version, an unknown version, and versions of a destroyed key', async () => {
    const { svc } = setup();
    const key = await svc.create({ instance: 'inst', name: 'crk' });
    const v1 = key.versions[0]?.id as string;
    await rejectsWith(svc.disableVersion('inst', key.id, v1), 'KEY_VERSION_CURRENT_ERR');
    await rejectsWith(svc.disableVersion('inst', key.id, 'nope'), 'NOT_FOUND_ERR');
    await rejectsWith(svc.enableVersion('inst', key.id, 'nope'), 'NOT_FOUND_ERR');
    await rejectsWith(svc.disableVersion('inst', 'absent', v1), 'KEY_NOT_FOUND_ERR');
    await svc.rotate('inst', key.id);
    await svc.destroy('inst', key.id);
    await rejectsWith(svc.disableVersion('inst', key.id, v1), 'KEY_DELETED_ERR');
  });
});
