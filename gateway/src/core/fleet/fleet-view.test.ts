import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { NodeRecord, UsageCount } from './fleet.js';
import { fleetView, nodeStates } from './fleet-view.js';

const node = (over: Partial<NodeRecord>): NodeRecord => ({
  cluster: 'c1',
  node: 'm1',
  instance: 'i',
  crk: 'k',
  shimVersion: '0.1.0',
  apis: ['v2'],
  cacheSize: 1,
  health: 'ok',
  lastSeen: '2026-12-06T00:00:00.000Z',
  replica: 'r1',
  ...over,
});

const use = (over: Partial<UsageCount>): UsageCount => ({
  cluster: 'c1',
  instance: 'i',
  crk: 'k',
  version: 'v1',
  op: 'unwrap',
  minute: '2026-12-06T00:00:00.000Z',
  count: 1,
  ...over,
});

describe('fleet view', () => {
  const now = new Date('2026-12-06T00:05:00.000Z');

  it('flags nodes whose last report is older than the limit, sorted by cluster and node', () => {
    const nodes = [
      node({ cluster: 'c2', node: 'b', lastSeen: '2026-12-06T00:04:30.000Z' }),
      node({ cluster: 'c2', node: 'a', lastSeen: '2026-12-06T00:01:00.000Z' }),
      node({ cluster: 'c1', node: 'z', lastSeen: '2026-12-06T00:04:59.000Z' }),
    ];
    const v = fleetView(nodes, [], now, 180_000, new Date(0));
    assert.deepEqual(
      v.nodes.map((n) => [n.cluster, n.node, n.stale]),
      [
        ['c1', 'z', false],
        ['c2', 'a', true],
        ['c2', 'b', false],
      ],
    );
    assert.deepEqual(nodeStates(nodes, now, 180_000), { fresh: 2, stale: 1 });
  });

  it('adds up uses per cluster and per root-key version', () => {
    const v = fleetView(
      [],
      [
        use({ count: 3 }),
        use({ minute: '2026-12-06T00:01:00.000Z', count: 2 }),
        use({ op: 'wrap', version: 'v2', count: 5 }),
        use({ cluster: 'c2', op: 'rewrap', count: 7 }),
      ],
      now,
      180_000,
      new Date('2026-12-05T23:05:00.000Z'),
    );
    assert.deepEqual(v.usage.clusters.c1, {
      wrap: 5,
      unwrap: 5,
      rewrap: 0,
      versions: [
        { instance: 'i', crk: 'k', version: 'v1', wrap: 0, unwrap: 5, rewrap: 0 },
        { instance: 'i', crk: 'k', version: 'v2', wrap: 5, unwrap: 0, rewrap: 0 },
      ],
    });
    assert.equal(v.usage.clusters.c2?.rewrap, 7);
    assert.equal(v.usage.since, '2026-12-05T23:05:00.000Z');
  });
});
