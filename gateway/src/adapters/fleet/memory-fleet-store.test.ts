import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { NodeRecord } from '../../core/fleet/fleet.js';
import { MemoryFleetStore } from './memory-fleet-store.js';

const node = (over: Partial<NodeRecord>): NodeRecord => ({
  cluster: 'c1',
  node: 'm1',
  instance: 'i',
  crk: 'k',
  shimVersion: '0.1.0',
  apis: ['v2'],
  cacheSize: 1,
  health: 'ok',
  lastSeen: '2026-12-01T00:00:00.000Z',
  replica: 'r1',
  ...over,
});

test('keeps the latest report per node and forgets a removed cluster', async () => {
  const fleet = new MemoryFleetStore();
  fleet.noteNode(node({ keyVersion: '1' }));
  fleet.noteNode(node({ keyVersion: '2', lastSeen: '2026-12-01T00:01:00.000Z' }));
  fleet.noteNode(node({ cluster: 'c2', lastSeen: '2026-11-30T00:00:00.000Z' }));
  const nodes = await fleet.nodes();
  assert.deepEqual(
    nodes.map((n) => [n.cluster, n.keyVersion]),
    [
      ['c2', undefined],
      ['c1', '2'],
    ],
  );
  await fleet.forgetCluster('c1');
  assert.deepEqual(
    (await fleet.nodes()).map((n) => n.cluster),
    ['c2'],
  );
});

test('counts uses per minute, filters by key and cluster, and drops minutes past retention', async () => {
  let now = new Date('2026-12-01T00:00:30.000Z');
  const fleet = new MemoryFleetStore({ usageRetentionMs: 10 * 60_000, now: () => now });
  const use = { cluster: 'c1', instance: 'i', crk: 'k', version: '1', op: 'unwrap' as const };
  fleet.noteUse({ ...use, at: new Date('2026-12-01T00:00:10.000Z') });
  fleet.noteUse({ ...use, at: new Date('2026-12-01T00:00:50.000Z') });
  fleet.noteUse({ ...use, cluster: 'c2', at: new Date('2026-12-01T00:00:50.000Z') });
  const all = await fleet.usage({ since: new Date(0) });
  assert.equal(all.length, 2);
  const c1 = await fleet.usage({ since: new Date(0), cluster: 'c1' });
  assert.deepEqual(
    c1.map((u) => [u.minute, u.count]),
    [['2026-12-01T00:00:00.000Z', 2]],
  );
  assert.equal((await fleet.usage({ since: new Date(0), crk: 'other' })).length, 0);
  now = new Date('2026-12-01T00:30:00.000Z');
  fleet.noteUse({ ...use, at: now });
  assert.deepEqual(
    (await fleet.usage({ since: new Date(0) })).map((u) => u.minute),
    ['2026-12-01T00:30:00.000Z'],
  );
});

test('rotations come newest first and a snapshot restores into a new store', async () => {
  const fleet = new MemoryFleetStore();
  const r = { instance: 'i', crk: 'k', fromVersion: '1', toVersion: '2', startedBy: 'cli' };
  await fleet.startRotation({ ...r, startedAt: '2026-12-01T00:00:00.000Z' });
  await fleet.startRotation({
    ...r,
    fromVersion: '2',
    toVersion: '3',
    startedAt: '2026-12-02T00:00:00.000Z',
  });
  await fleet.startRotation({ ...r, crk: 'other', startedAt: '2026-12-03T00:00:00.000Z' });
  assert.deepEqual(
    (await fleet.rotations('i', 'k')).map((x) => x.toVersion),
    ['3', '2'],
  );
  fleet.noteNode(node({}));
  const copy = new MemoryFleetStore({}, fleet.snapshot());
  assert.equal((await copy.rotations('i', 'k')).length, 2);
  assert.equal((await copy.nodes()).length, 1);
});
