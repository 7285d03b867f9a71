import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { decodeWrappedDek } from '@keygate/shared/formats';
import { FakeHsm } from '../../testing/fake-hsm.js';
import { MemoryKeyStore } from '../../testing/memory-key-store.js';
import type { KeyDeps } from './key-deps.js';
import { createKeyService, type KeyService } from './key-service.js';
import type { KeyStore } from './key-store.js';
import { UsageBudget, type UsageEvent, type UsageLimits } from './usage-budget.js';

/** A store that counts reservations (the budget must write once per block, never per wrap). */
class CountingStore extends MemoryKeyStore {
  reservations = 0;
  override async reserveEncryptions(i: string, k: string, v: string, n: number): Promise<number> {
    this.reservations++;
    return super.reserveEncryptions(i, k, v, n);
  }
}

interface Replica {
  readonly svc: KeyService;
  readonly budget: UsageBudget;
  readonly events: UsageEvent[];
}

function world(limits: Partial<UsageLimits>) {
  const random = seededRandom('usage-budget');
  const hsm = new FakeHsm(random);
  const store = new CountingStore();
  let t = Date.parse('2026-01-01T00:00:00Z');
  const clock = { now: () => new Date(t) };
  const full: UsageLimits = { policy: 'rotate', warnAt: 30, rotateAt: 50, blockSize: 10, ...limits };
  const replica = (s: KeyStore = store): Replica => {
    const events: UsageEvent[] = [];
    const budget = new UsageBudget(full, (e) => {
      events.push(e);
    });
    const deps: KeyDeps = { hsm, store: s, clock, random, usage: budget };
    return { svc: createKeyService(deps), budget, events };
  };
  return {
    store,
    replica,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

const wrapN = async (svc: KeyService, keyId: string, n: number) => {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await svc.wrap({ instance: 'inst', keyId, aad: [] })).keyVersionId);
  return out;
};

const tally = (ids: readonly string[]) => {
  const m = new Map<string, number>();
  for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
  return m;
};

describe('usage budget (encryptions per key version)', () => {
  it('reserves blocks: one store write per block, the store total an upper bound of the wraps', async () => {
    const w = world({ blockSize: 10, rotateAt: 1000, warnAt: 1000 });
    const r = w.replica();
    const key = await r.svc.create({ instance: 'inst', name: 'k' });
    await wrapN(r.svc, key.id, 25);
    assert.equal(w.store.reservations, 3);
    const v = key.versions[0]?.id as string;
    assert.equal(await w.store.reserveEncryptions('inst', key.id, v, 0), 30);
    assert.deepEqual(r.budget.samples(), [
      { instance: 'inst', keyId: key.id, versionId: v, reserved: 30, used: 25 },
    ]);
  });

  it('warns at warnAt and rotates at rotateAt: no version makes more than rotateAt encryptions', async () => {
    const w = world({ blockSize: 10, warnAt: 30, rotateAt: 50 });
    const r = w.replica();
    const key = await r.svc.create({ instance: 'inst', name: 'k' });
    const ids = await wrapN(r.svc, key.id, 120);
    const versions = (await r.svc.get('inst', key.id)).versions.map((v) => v.id);
    assert.equal(versions.length, 3);
    assert.deepEqual(
      versions.map((v) => tally(ids).get(v)),
      [50, 50, 20],
    );
    assert.deepEqual(
      r.events.map((e) => e.type),
      ['warn', 'rotated', 'warn', 'rotated'],
    );
    const rotated = r.events.filter((e) => e.type === 'rotated');
    assert.deepEqual(
      rotated.map((e) => [e.fromVersionId, e.toVersionId, e.reason]),
      [
        [versions[0], versions[1], 'count'],
        [versions[1], versions[2], 'count'],
      ],
    );
    // Rewraps spend the budget too, and old blobs still unwrap.
    const old = await r.svc.wrap({ instance: 'inst', keyId: key.id, aad: [] });
    assert.equal(old.keyVersionId, versions[2]);
    const u = await r.svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: old.ciphertext, aad: [] });
    assert.deepEqual(u.plaintext, old.generated);
  });

  it('refuse policy: KEY_USAGE_LIMIT_ERR past rotateAt, unwrap keeps working, a manual rotation restores wraps', async () => {
    const w = world({ policy: 'refuse', blockSize: 7, warnAt: 10, rotateAt: 20 });
    const r = w.replica();
    const key = await r.svc.create({ instance: 'inst', name: 'k' });
    const ids = await wrapN(r.svc, key.id, 19);
    const last = (await r.svc.wrap({ instance: 'inst', keyId: key.id, aad: [] })).ciphertext;
    assert.equal(new Set(ids).size, 1);
    const refused = (e: unknown) => isKeygateError(e) && e.code === 'KEY_USAGE_LIMIT_ERR';
    await assert.rejects(r.svc.wrap({ instance: 'inst', keyId: key.id, aad: [] }), refused);
    // A rewrap is a GCM encryption too: refused as well.
    const first = await r.svc.unwrap({ instance: 'inst', keyId: key.id, ciphertext: last, aad: [] });
    assert.equal(first.plaintext.length, 32);
    await assert.rejects(
      r.svc.rewrap({ instance: 'inst', keyId: key.id, ciphertext: last, aad: [] }),
      refused,
    );
    // Refused without a store write per request.
    const writes = w.store.reservations;
    await assert.rejects(r.svc.wrap({ instance: 'inst', keyId: key.id, aad: [] }), refused);
    assert.equal(w.store.reservations, writes);
    assert.equal((await r.svc.get('inst', key.id)).versions.length, 1);
    assert.deepEqual(
      r.events.map((e) => e.type),
      ['warn', 'refused'],
    );
    const rotated = await r.svc.rotate('inst', key.id);
    const fresh = await r.svc.wrap({ instance: 'inst', keyId: key.id, aad: [] });
    assert.equal(fresh.keyVersionId, rotated.versions[1]?.id);
    const moved = await r.svc.rewrap({ instance: 'inst', keyId: key.id, ciphertext: last, aad: [] });
    assert.equal(decodeWrappedDek(moved.ciphertext).keyVersionId, rotated.versions[1]?.id);
  });

  it('two replicas wrapping at once: one rotation per exhausted version, never more than rotateAt under one', async () => {
    const w = world({ blockSize: 10, warnAt: 100, rotateAt: 100 });
    const a = w.replica();
    const b = w.replica();
    const key = await a.svc.create({ instance: 'inst', name: 'k' });
    const ids = (
      await Promise.all(Array.from({ length: 8 }, (_, i) => wrapN(i % 2 === 0 ? a.svc : b.svc, key.id, 40)))
    ).flat();
    assert.equal(ids.length, 320);
    const versions = (await a.svc.get('inst', key.id)).versions.map((v) => v.id);
    const counts = tally(ids);
    for (const [v, n] of counts) assert.ok(n <= 100, `${v}: ${n} encryptions`);
    // 320 wraps at <= 100 per version: at least 4 versions, and no rotation wasted on a race.
    const rotations = [...a.events, ...b.events].filter((e) => e.type === 'rotated').length;
    assert.equal(rotations, versions.length - 1);
    assert.ok(versions.length >= 4 && versions.length <= 5, `${versions.length} versions`);
    for (const v of versions) {
      const reserved = await w.store.reserveEncryptions('inst', key.id, v, 0);
      assert.ok(reserved >= (counts.get(v) ?? 0), 'the store total is an upper bound');
    }
  });

  it('rotateAfter: a version older than it is rotated on the next wrap', async () => {
    const w = world({ blockSize: 10, warnAt: 1000, rotateAt: 1000, rotateAfterMs: 90 * 86_400_000 });
    const r = w.replica();
    const key = await r.svc.create({ instance: 'inst', name: 'k' });
    const v1 = (await wrapN(r.svc, key.id, 3))[0];
    w.advance(89 * 86_400_000);
    assert.equal((await wrapN(r.svc, key.id, 1))[0], v1);
    w.advance(86_400_000);
    const v2 = (await wrapN(r.svc, key.id, 1))[0];
    assert.notEqual(v2, v1);
    assert.deepEqual(
      r.events.map((e) => (e.type === 'rotated' ? e.reason : e.type)),
      ['age'],
    );
    assert.equal((await wrapN(r.svc, key.id, 1))[0], v2);
  });
});
