import assert from 'node:assert/strict';
import { it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { KeyState } from '@keygate/shared/api';
import { isKeygateError, KeygateError } from '@keygate/shared/errors';
import type { KeyRecord, KeyStore } from '../core/keys/key-store.js';

/**
 * Two stores on one backing (two gateway replicas sharing a file or a database), freshly
 * emptied for one case. `close` releases both.
 */
export interface StorePair {
  readonly a: KeyStore;
  readonly b: KeyStore;
  close(): Promise<void>;
}

/** A propagation bound every store keeps: a change is seen by every replica's ordinary get within it. */
export const PROPAGATION_BOUND_MS = 1000;

let counter = 0;

/** A key record with a fresh id in `instance` (ids are unique across the cases of one run). */
export function keyRecord(instance: string, name?: string, versions = 1): KeyRecord {
  counter++;
  const id = `k${process.pid}x${counter}`;
  const t = new Date(Date.UTC(2026, 0, 1, 0, 0, counter % 60, counter % 1000)).toISOString();
  return {
    instance,
    id,
    name: name ?? id,
    description: `key ${counter}`,
    state: KeyState.ACTIVE,
    creationDate: t,
    lastUpdateDate: t,
    versions: Array.from({ length: versions }, (_, i) => ({ id: `${id}v${i + 1}`, creationDate: t })),
  };
}

const code = (c: string) => (e: unknown) => isKeygateError(e) && e.code === c;

function addVersion(k: KeyRecord, id: string): KeyRecord {
  return { ...k, versions: [...k.versions, { id, creationDate: k.lastUpdateDate }] };
}

/**
 * The key store contract: every KeyStore implementation runs these cases (node:test `it`s, to
 * be called inside a `describe`). `pair()` gives two replicas of one store.
 */
export function keyStoreContract(pair: () => Promise<StorePair>): void {
  const withPair = async (run: (p: StorePair, instance: string) => Promise<void>) => {
    const p = await pair();
    try {
      await run(p, `inst-${process.pid}-${++counter}`);
    } finally {
      await p.close();
    }
  };

  it('creates, reads back exactly what it stored, and lists oldest first', () =>
    withPair(async ({ a, b }, instance) => {
      const first = keyRecord(instance, 'first', 2);
      const second = { ...keyRecord(instance, 'second'), description: undefined };
      await a.create(first);
      await a.create(second);
      assert.deepEqual(await a.get(instance, first.id), first);
      assert.deepEqual(await b.get(instance, first.id, { fresh: true }), first);
      const listed = await b.list(instance);
      assert.deepEqual(
        listed.map((k) => k.name),
        ['first', 'second'],
      );
      assert.equal(listed[1]?.description, undefined);
      assert.equal(await a.get(instance, 'absent'), undefined);
      assert.deepEqual(await a.list(`${instance}-other`), []);
    }));

  it('refuses a second live key of one name in one instance; a destroyed key frees its name', () =>
    withPair(async ({ a, b }, instance) => {
      const k = keyRecord(instance, 'shared-name');
      await a.create(k);
      await assert.rejects(b.create(keyRecord(instance, 'shared-name')), code('KEY_ALREADY_EXISTS_ERR'));
      await b.create(keyRecord(`${instance}-2`, 'shared-name'));
      await a.update(instance, k.id, (cur) => ({ ...cur, state: KeyState.DESTROYED }));
      await b.create(keyRecord(instance, 'shared-name'));
      assert.equal((await a.list(instance)).length, 2);
    }));

  it('updates on the latest state; a refusal inside the change writes nothing; a missing key is KEY_NOT_FOUND_ERR', () =>
    withPair(async ({ a, b }, instance) => {
      const k = keyRecord(instance);
      await a.create(k);
      const after = await b.update(instance, k.id, (cur) => ({
        ...addVersion(cur, `${k.id}v2`),
        state: KeyState.SUSPENDED,
        lastUpdateDate: '2026-02-01T00:00:00.000Z',
      }));
      assert.equal(after.versions.length, 2);
      assert.deepEqual(await a.get(instance, k.id, { fresh: true }), after);
      await assert.rejects(
        a.update(instance, k.id, () => {
          throw new KeygateError('KEY_ACTION_INVALID_STATE_ERR');
        }),
        code('KEY_ACTION_INVALID_STATE_ERR'),
      );
      assert.deepEqual(await b.get(instance, k.id, { fresh: true }), after);
      await assert.rejects(
        a.update(instance, 'absent', (cur) => cur),
        code('KEY_NOT_FOUND_ERR'),
      );
    }));

  it('keeps a version disabledAt through updates, a new version and a re-enable, on both replicas', () =>
    withPair(async ({ a, b }, instance) => {
      const k = keyRecord(instance, undefined, 2);
      await a.create(k);
      const at = '2026-03-01T10:00:00.000Z';
      const disabled = await b.update(instance, k.id, (cur) => ({
        ...cur,
        versions: cur.versions.map((v, i) => (i === 0 ? { ...v, disabledAt: at } : v)),
      }));
      assert.equal(disabled.versions[0]?.disabledAt, at);
      assert.deepEqual(await a.get(instance, k.id, { fresh: true }), disabled);
      // An unrelated change (a rotation) keeps it.
      const rotated = await a.update(instance, k.id, (cur) => addVersion(cur, `${k.id}v3`));
      assert.equal(rotated.versions[0]?.disabledAt, at);
      assert.equal((await b.get(instance, k.id, { fresh: true }))?.versions[0]?.disabledAt, at);
      assert.equal((await b.list(instance))[0]?.versions[0]?.disabledAt, at);
      const enabled = await b.update(instance, k.id, (cur) => ({
        ...cur,
        versions: cur.versions.map(({ id, creationDate }) => ({ id, creationDate })),
      }));
      const back = await a.get(instance, k.id, { fresh: true });
      assert.deepEqual(back, enabled);
      assert.ok(back?.versions.every((v) => v.disabledAt === undefined && !('disabledAt' in v)));
    }));

  it('serialises concurrent writers on two replicas: no update is lost', () =>
    withPair(async ({ a, b }, instance) => {
      const k = keyRecord(instance);
      await a.create(k);
      await Promise.all(
        Array.from({ length: 24 }, (_, i) =>
          (i % 2 === 0 ? a : b).update(instance, k.id, (cur) => addVersion(cur, `${k.id}r${i}`)),
        ),
      );
      const final = await a.get(instance, k.id, { fresh: true });
      assert.equal(final?.versions.length, 25);
      assert.equal(new Set(final?.versions.map((v) => v.id)).size, 25);
    }));

  it('reserves encryptions per version: running totals, kept apart from the record and across updates', () =>
    withPair(async ({ a, b }, instance) => {
      const k = keyRecord(instance, undefined, 2);
      const [v1, v2] = k.versions.map((v) => v.id) as [string, string];
      await a.create(k);
      assert.equal(await a.reserveEncryptions(instance, k.id, v1, 0), 0);
      assert.equal(await a.reserveEncryptions(instance, k.id, v1, 1000), 1000);
      assert.equal(await b.reserveEncryptions(instance, k.id, v1, 1000), 2000);
      assert.equal(await b.reserveEncryptions(instance, k.id, v2, 7), 7);
      // The record reads back exactly as stored: the count is not part of it.
      assert.deepEqual(await b.get(instance, k.id, { fresh: true }), k);
      // Other changes of the key (a rotation, a state change) keep the counts.
      await a.update(instance, k.id, (cur) => ({
        ...addVersion(cur, `${k.id}v3`),
        state: KeyState.SUSPENDED,
      }));
      assert.equal(await b.reserveEncryptions(instance, k.id, v1, 0), 2000);
      assert.equal(await a.reserveEncryptions(instance, k.id, v2, 0), 7);
      assert.equal(await a.reserveEncryptions(instance, k.id, `${k.id}v3`, 0), 0);
      // Totals beyond 2^32 stay exact (a bigint in PostgreSQL, a safe integer in JSON).
      assert.equal(await a.reserveEncryptions(instance, k.id, v2, 2 ** 33), 2 ** 33 + 7);
      await assert.rejects(a.reserveEncryptions(instance, k.id, 'absent', 1), code('KEY_NOT_FOUND_ERR'));
      await assert.rejects(a.reserveEncryptions(instance, 'absent', v1, 1), code('KEY_NOT_FOUND_ERR'));
    }));

  it('two replicas reserving blocks at once get disjoint blocks: nothing is counted twice or lost', () =>
    withPair(async ({ a, b }, instance) => {
      const k = keyRecord(instance);
      const v = k.versions[0]?.id as string;
      await a.create(k);
      const block = 10_000;
      const n = 20;
      const totals = await Promise.all(
        Array.from({ length: n }, (_, i) =>
          (i % 2 === 0 ? a : b).reserveEncryptions(instance, k.id, v, block),
        ),
      );
      // Each reservation's block is [total - block, total): all distinct and together 0 .. n*block.
      const sorted = [...totals].sort((x, y) => x - y);
      assert.deepEqual(
        sorted,
        Array.from({ length: n }, (_, i) => (i + 1) * block),
      );
      assert.equal(await b.reserveEncryptions(instance, k.id, v, 0), n * block);
    }));

  it(`a change through one replica reaches the other's ordinary reads within ${PROPAGATION_BOUND_MS} ms`, () =>
    withPair(async ({ a, b }, instance) => {
      const k = keyRecord(instance);
      await a.create(k);
      // b reads (and may cache) the key, then a destroys it.
      assert.equal((await b.get(instance, k.id))?.state, KeyState.ACTIVE);
      await a.update(instance, k.id, (cur) => ({ ...cur, state: KeyState.DESTROYED }));
      const changedAt = performance.now();
      let seenAfter: number | undefined;
      while (performance.now() - changedAt < 5 * PROPAGATION_BOUND_MS) {
        if ((await b.get(instance, k.id))?.state === KeyState.DESTROYED) {
          seenAfter = performance.now() - changedAt;
          break;
        }
        await sleep(10);
      }
      assert.ok(seenAfter !== undefined, 'the other replica never saw the destroy');
      // Twice the bound: a loaded CI machine adds scheduling delay, but not seconds.
      assert.ok(
        seenAfter <= 2 * PROPAGATION_BOUND_MS,
        `seen after ${Math.round(seenAfter)} ms (bound ${PROPAGATION_BOUND_MS} ms)`,
      );
    }));
}
