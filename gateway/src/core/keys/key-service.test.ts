import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyState } from '@keygate/shared/api';
import { seededRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { decodeWrappedDek } from '@keygate/shared/formats';
import { FakeHsm } from '../../testing/fake-hsm.js';
import { MemoryKeyStore } from '../../testing/memory-key-store.js';
import { DEFAULT_LIST_STATES } from './key-listing.js';
import { createKeyService } from './key-service.js';
import type { KeyRecord } from './key-store.js';

function setup(options: { rewrapOnUnwrap?: boolean } = {}) {
  const random = seededRandom('key-service');
  const hsm = new FakeHsm(random);
  const store = new MemoryKeyStore();
  let t = Date.parse('2026-01-01T00:00:00Z');
  const clock = {
    now: () => {
      t += 1000;
      return new Date(t);
    },
  };
  return { hsm, store, svc: createKeyService({ hsm, store, clock, random, ...options }) };
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => isKeygateError(err) && err.code === code);
}

describe('key service (fake HSM)', () => {
  it('wraps, unwraps and rewraps a given DEK with aad', async () => {
    const { svc } = setup();
    const key = await svc.create({ instance: 'inst', name: 'crk-1' });
    const dek = Buffer.alloc(32, 9);
    const w = await svc.wrap({ instance: 'inst', keyId: key.id, plaintext: dek, aad: ['a', 'b'] });
    assert.equal(w.generated, undefined);
    assert.equal(decodeWrappedDek(w.ciphertext).keyVersionId, w.keyVersionId);
    const u = await svc.unwrap({
      instance: 'inst',
      keyId: key.id,
      ciphertext: w.ciphertext,
      aad: ['a', 'b'],
    });
    assert.deepEqual(u.plaintext, dek);
    assert.equal(u.rewrapped, undefined);
    const r = await svc.rewrap({
      instance: 'inst',
      keyId: key.id,
      ciphertext: w.ciphertext,
      aad: ['a', 'b'],
    });
    assert.notDeepEqual(r.ciphertext, w.ciphertext);
    const u2 = await svc.unwrap({
      instance: 'inst',
      keyId: key.id,
      ciphertext: r.ciphertext,
      aad: ['a', 'b'],
    });
    assert.deepEqual(u2.plaintext, dek);
  });

  it('generates a 32-byte DEK when none is given', async () => {
    const { svc } = setup();
    const key = await svc.create({ instance: 'inst', name: 'crk-1' });
    const w = await svc.wrap({ instance: 'inst', keyId: key.id, aad: [] });
    assert.equal(w.generated?.length, 32);
    const u = await svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: w.ciphertext, aad: [] });
    assert.deepEqual(u.plaintext, w.generated);
  });

  it('refuses other aad, another instance, another key and tampered blobs', async () => {
    const { svc } = setup();
    const key = await svc.create({ instance: 'inst', name: 'crk-1' });
    const other = await svc.create({ instance: 'inst', name: 'crk-2' });
    const w = await svc.wrap({ instance: 'inst', keyId: key.id, aad: ['x'] });
    await rejectsWith(
      svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: w.ciphertext, aad: ['y'] }),
      'UNPROCESSABLE_CIPHERTEXT_ERR',
    );
    await rejectsWith(
      svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: w.ciphertext, aad: [] }),
      'UNPROCESSABLE_CIPHERTEXT_ERR',
    );
    await rejectsWith(
      svc.unwrap({ instance: 'inst', keyId: other.id, ciphertext: w.ciphertext, aad: ['x'] }),
      'UNPROCESSABLE_CIPHERTEXT_ERR',
    );
    // Through another instance: its own CRK does not know the blob's version, and the AAD binds the instance.
    const elsewhere = await svc.create({ instance: 'inst-2', name: 'crk-1' });
    await rejectsWith(
      svc.unwrap({ instance: 'inst-2', keyId: elsewhere.id, ciphertext: w.ciphertext, aad: ['x'] }),
      'UNPROCESSABLE_CIPHERTEXT_ERR',
    );
    await rejectsWith(
      svc.unwrap({ instance: 'inst-2', keyId: key.id, ciphertext: w.ciphertext, aad: ['x'] }),
      'KEY_NOT_FOUND_ERR',
    );
    const bad = Buffer.from(w.ciphertext);
    bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 1;
    await rejectsWith(
      svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: bad, aad: ['x'] }),
      'UNPROCESSABLE_CIPHERTEXT_ERR',
    );
    await rejectsWith(
      svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: Buffer.from('nope'), aad: ['x'] }),
      'UNPROCESSABLE_CIPHERTEXT_ERR',
    );
  });

  it('rotates: old blobs unwrap (and come back re-wrapped with rewrapOnUnwrap), new wraps use the new version', async () => {
    const { svc } = setup({ rewrapOnUnwrap: true });
    const key = await svc.create({ instance: 'inst', name: 'crk-1' });
    const old = await svc.wrap({ instance: 'inst', keyId: key.id, aad: [] });
    const rotated = await svc.rotate('inst', key.id);
    assert.equal(rotated.versions.length, 2);
    const v2 = rotated.versions[1]?.id;
    const w = await svc.wrap({ instance: 'inst', keyId: key.id, aad: [] });
    assert.equal(w.keyVersionId, v2);
    const u = await svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: old.ciphertext, aad: [] });
    assert.equal(u.keyVersionId, old.keyVersionId);
    assert.equal(u.rewrapped?.keyVersionId, v2);
    assert.deepEqual(u.plaintext, old.generated);
    const again = await svc.unwrap({
      instance: 'inst',
      keyId: key.id,
      ciphertext: u.rewrapped?.ciphertext ?? Buffer.alloc(0),
      aad: [],
    });
    assert.deepEqual(again.plaintext, old.generated);
    assert.equal(again.rewrapped, undefined);
  });

  it("does not re-wrap on unwrap unless rewrapOnUnwrap is set (a re-wrap spends the current version's budget)", async () => {
    const { svc } = setup();
    const key = await svc.create({ instance: 'inst', name: 'crk-1' });
    const old = await svc.wrap({ instance: 'inst', keyId: key.id, aad: [] });
    await svc.rotate('inst', key.id);
    const u = await svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: old.ciphertext, aad: [] });
    assert.equal(u.keyVersionId, old.keyVersionId);
    assert.deepEqual(u.plaintext, old.generated);
    assert.equal(u.rewrapped, undefined);
  });

  it('disable refuses use, enable restores it; wrong transitions are 409', async () => {
    const { svc } = setup();
    const key = await svc.create({ instance: 'inst', name: 'crk-1' });
    const w = await svc.wrap({ instance: 'inst', keyId: key.id, aad: [] });
    assert.equal((await svc.disable('inst', key.id)).state, KeyState.SUSPENDED);
    await rejectsWith(svc.wrap({ instance: 'inst', keyId: key.id, aad: [] }), 'KEY_ACTION_INVALID_STATE_ERR');
    await rejectsWith(
      svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: w.ciphertext, aad: [] }),
      'KEY_ACTION_INVALID_STATE_ERR',
    );
    await rejectsWith(svc.rotate('inst', key.id), 'KEY_ACTION_INVALID_STATE_ERR');
    await rejectsWith(svc.disable('inst', key.id), 'KEY_ACTION_INVALID_STATE_ERR');
    assert.equal((await svc.enable('inst', key.id)).state, KeyState.ACTIVE);
    await svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: w.ciphertext, aad: [] });
  });

  it('destroy deletes every HSM object; later use is KEY_DELETED_ERR', async () => {
    const { svc, hsm } = setup();
    const key = await svc.create({ instance: 'inst', name: 'crk-1' });
    const w = await svc.wrap({ instance: 'inst', keyId: key.id, aad: [] });
    await svc.rotate('inst', key.id);
    assert.equal(hsm.keys.size, 2);
    const gone = await svc.destroy('inst', key.id);
    assert.equal(gone.state, KeyState.DESTROYED);
    assert.equal(hsm.keys.size, 0);
    await rejectsWith(
      svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: w.ciphertext, aad: [] }),
      'KEY_DELETED_ERR',
    );
    await rejectsWith(svc.enable('inst', key.id), 'KEY_DELETED_ERR');
    assert.equal((await svc.list('inst')).length, 0);
    assert.equal((await svc.get('inst', key.id)).state, KeyState.DESTROYED);
    // The name is free again.
    await svc.create({ instance: 'inst', name: 'crk-1' });
  });

  it('destroying a destroyed key answers KEY_DELETED_ERR, after deleting objects a half-done destroy left', async () => {
    const { svc, hsm, store } = setup();
    const key = await svc.create({ instance: 'inst', name: 'crk-1' });
    await svc.rotate('inst', key.id);
    // A destroy that stopped after marking the key: both HSM objects are still there.
    await store.update('inst', key.id, (cur) => ({ ...cur, state: KeyState.DESTROYED }));
    assert.equal(hsm.keys.size, 2);
    await rejectsWith(svc.destroy('inst', key.id), 'KEY_DELETED_ERR');
    assert.equal(hsm.keys.size, 0);
    await rejectsWith(svc.destroy('inst', key.id), 'KEY_DELETED_ERR');
  });

  it('an object the HSM cannot find while the store says active is a 503 fault, reported for recovery', async () => {
    const { svc, hsm } = setup();
    const key = await svc.create({ instance: 'inst', name: 'crk-1' });
    const w = await svc.wrap({ instance: 'inst', keyId: key.id, aad: [] });
    const [label] = [...hsm.keys.keys()];
    assert.ok(label);
    const kept = hsm.keys.get(label);
    assert.ok(kept);
    hsm.keys.delete(label); // the device lost sight of it (token storage unavailable)
    await rejectsWith(svc.wrap({ instance: 'inst', keyId: key.id, aad: [] }), 'HSM_KEY_OBJECT_MISSING');
    await rejectsWith(
      svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: w.ciphertext, aad: [] }),
      'HSM_KEY_OBJECT_MISSING',
    );
    const expected = { instance: 'inst', crkId: key.id, versionId: w.keyVersionId };
    assert.deepEqual(hsm.reported, [expected, expected]);
    hsm.keys.set(label, kept); // back: the same blob unwraps, nothing was lost
    const u = await svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: w.ciphertext, aad: [] });
    assert.deepEqual(u.plaintext, w.generated);
  });

  it('a destroy racing an unwrap answers KEY_DELETED_ERR from the store and starts no recovery', async () => {
    const { svc, hsm } = setup();
    const key = await svc.create({ instance: 'inst', name: 'crk-1' });
    const w = await svc.wrap({ instance: 'inst', keyId: key.id, aad: [] });
    // The destroy lands after the request loaded the key (active) and before its HSM call.
    const decrypt = hsm.decrypt.bind(hsm);
    hsm.decrypt = async (ref, sealed, aad) => {
      await svc.destroy('inst', key.id);
      return decrypt(ref, sealed, aad);
    };
    await rejectsWith(
      svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: w.ciphertext, aad: [] }),
      'KEY_DELETED_ERR',
    );
    assert.deepEqual(hsm.reported, []);
  });

  it('names are unique per instance; unknown keys are 404; bad sizes are 400', async () => {
    const { svc } = setup();
    const key = await svc.create({ instance: 'inst', name: 'crk-1' });
    await rejectsWith(svc.create({ instance: 'inst', name: 'crk-1' }), 'KEY_ALREADY_EXISTS_ERR');
    await svc.create({ instance: 'inst-2', name: 'crk-1' });
    await rejectsWith(svc.get('inst-2', key.id), 'KEY_NOT_FOUND_ERR');
    await rejectsWith(
      svc.wrap({ instance: 'inst', keyId: key.id, plaintext: Buffer.alloc(0), aad: [] }),
      'INVALID_FIELD_ERR',
    );
    await rejectsWith(
      svc.wrap({ instance: 'inst', keyId: key.id, plaintext: Buffer.alloc(5000), aad: [] }),
      'PLAINTEXT_TOO_LARGE_ERR',
    );
    await rejectsWith(
      svc.wrap({ instance: 'inst', keyId: key.id, aad: ['é'.repeat(600)] }),
      'INVALID_FIELD_ERR',
    );
  });
});

describe('key listing (fake HSM)', () => {
  const all: ReadonlySet<number> = new Set([0, 1, 2, 3, 5]);
  async function threeKeys() {
    const t = setup();
    const made = [];
    for (const name of ['k-1', 'k-2', 'k-3']) made.push(await t.svc.create({ instance: 'inst', name }));
    const [a, b, c] = made as [KeyRecord, KeyRecord, KeyRecord];
    await t.svc.disable('inst', b.id);
    await t.svc.destroy('inst', c.id);
    await t.svc.create({ instance: 'other', name: 'k-1' });
    return { ...t, a, b, c };
  }
  const ids = (keys: readonly KeyRecord[]) => keys.map((k) => k.id);

  it('lists by id, filters by state (destroyed only when asked), and pages with limit and offset', async () => {
    const { svc, a, b, c } = await threeKeys();
    const sorted = [a.id, b.id, c.id].sort();
    const live = await svc.listPage('inst', { limit: 200, offset: 0, states: DEFAULT_LIST_STATES });
    assert.deepEqual(
      ids(live.items),
      sorted.filter((id) => id !== c.id),
    );
    assert.equal(live.total, 2);
    const every = await svc.listPage('inst', { limit: 200, offset: 0, states: all });
    assert.deepEqual(ids(every.items), sorted);
    assert.deepEqual(ids((await svc.listPage('inst', { limit: 9, offset: 0, states: new Set([2]) })).items), [
      b.id,
    ]);
    assert.deepEqual(ids((await svc.listPage('inst', { limit: 9, offset: 0, states: new Set([5]) })).items), [
      c.id,
    ]);
    assert.deepEqual(
      ids((await svc.listPage('inst', { limit: 9, offset: 0, states: new Set([0, 4]) })).items),
      [],
    );
    const pages = [];
    for (let offset = 0; offset < 4; offset += 2)
      pages.push(ids((await svc.listPage('inst', { limit: 2, offset, states: all })).items));
    assert.deepEqual(pages, [sorted.slice(0, 2), sorted.slice(2)]);
    const past = await svc.listPage('inst', { limit: 2, offset: 7, states: all });
    assert.deepEqual(past, { items: [], total: 3 });
    // Only root keys exist: asking for extractable (standard) keys finds none.
    assert.equal(
      (await svc.listPage('inst', { limit: 9, offset: 0, states: all, extractable: true })).total,
      0,
    );
    assert.equal(
      (await svc.listPage('inst', { limit: 9, offset: 0, states: all, extractable: false })).total,
      3,
    );
  });

  it("pages a key's versions newest first; a destroyed key's only with allKeyStates", async () => {
    const { svc, a, c } = await threeKeys();
    await svc.rotate('inst', a.id);
    const rotated = await svc.rotate('inst', a.id);
    const newestFirst = rotated.versions.map((v) => v.id).reverse();
    const q = { limit: 200, offset: 0, allKeyStates: false };
    const { page } = await svc.versions('inst', a.id, q);
    assert.deepEqual(
      page.items.map((v) => v.id),
      newestFirst,
    );
    const second = await svc.versions('inst', a.id, { ...q, limit: 1, offset: 1 });
    assert.deepEqual(second.page, { items: [rotated.versions[1]], total: 3 });
    await rejectsWith(svc.versions('inst', c.id, q), 'KEY_DELETED_ERR');
    assert.equal((await svc.versions('inst', c.id, { ...q, allKeyStates: true })).page.total, 1);
    await rejectsWith(svc.versions('inst', 'no-such-key', q), 'KEY_NOT_FOUND_ERR');
  });
});
