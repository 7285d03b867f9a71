import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { NodeRecord, RotationRecord, UsageCount, UsageOp } from './fleet.js';
import { duration, type RotationStatusInput, rotationStatus } from './rotation-status.js';

const MIN = 60_000;
const T0 = Date.parse('2026-06-01T12:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();
const minute = (ms: number) => new Date(Math.floor((T0 + ms) / MIN) * MIN).toISOString();
const KEY = { versions: ['v1', 'v2', 'v3', 'v4'].map((id) => ({ id, creationDate: at(-10 * MIN) })) };
const ROTATION: RotationRecord = {
  instance: 'inst',
  crk: 'crk',
  fromVersion: 'v2',
  toVersion: 'v3',
  startedAt: at(0),
  startedBy: 'cli',
};

function node(cluster: string, name: string, keyVersion: string | undefined, seenAgoMs = 0, nowMs = 0) {
  return {
    cluster,
    node: name,
    instance: 'inst',
    crk: 'crk',
    shimVersion: '1.0.0',
    kmsKeyId: keyVersion === undefined ? undefined : `keygate/inst/crk/${keyVersion}`,
    keyVersion,
    apis: ['v2'],
    cacheSize: 1,
    health: 'ok',
    lastSeen: at(nowMs - seenAgoMs),
    replica: 'r1',
  } satisfies NodeRecord;
}

function use(cluster: string, version: string, op: UsageOp, atMs: number, count = 1): UsageCount {
  return { cluster, instance: 'inst', crk: 'crk', version, op, minute: minute(atMs), count };
}

function input(over: Partial<RotationStatusInput>): RotationStatusInput {
  return {
    rotation: ROTATION,
    key: KEY,
    nodes: [],
    usage: [],
    now: new Date(T0 + 2 * 60 * MIN),
    staleAfterMs: 5 * MIN,
    quietWindowMs: 60 * MIN,
    ...over,
  };
}

describe('rotationStatus', () => {
  it('blocks on a lagging node and on recent old-version unwraps, one sentence each', () => {
    const now = 30 * MIN;
    const s = rotationStatus(
      input({
        now: new Date(T0 + now),
        nodes: [node('prod-eu', 'm1', 'v3', 0, now), node('prod-eu', 'm2', 'v2', MIN, now)],
        usage: [
          use('prod-eu', 'v2', 'unwrap', now - 5 * MIN, 7),
          use('prod-eu', 'v2', 'unwrap', now - MIN, 5),
        ],
      }),
    );
    assert.equal(s.safeToDisable, false);
    assert.equal(s.currentVersion, 'v4');
    const [c] = s.clusters;
    assert.equal(c?.converged, false);
    assert.equal(c?.newVersionSeen, false);
    assert.deepEqual(c?.oldVersionUse, [
      { version: 'v2', wraps: 0, unwraps: 12, rewraps: 0, lastUsed: minute(now - MIN) },
    ]);
    assert.deepEqual(s.reasons, [
      'cluster prod-eu: node m2 still reports version v2',
      `version v2 unwrapped 12 times since the rotation by cluster prod-eu (last in the minute of ${minute(now - MIN)}): re-encrypt its Secrets`,
      'quiet for 0s of the 1h window',
    ]);
    assert.equal(s.quietSince, at(now));
  });

  it('is safe once every fresh node converged (a later version counts) and the window is quiet', () => {
    const now = 2 * 60 * MIN;
    const s = rotationStatus(
      input({
        nodes: [
          node('a', 'm1', 'v3', 0, now),
          node('a', 'm2', 'v4', 0, now),
          node('a', 'm3', 'v1', 10 * MIN, now), // stale: neither blocks nor proves
          node('other-key', 'x', 'v1', 0, now),
        ].map((n) => (n.cluster === 'other-key' ? { ...n, crk: 'another' } : n)),
        usage: [
          use('a', 'v2', 'unwrap', 30 * MIN, 3),
          use('a', 'v3', 'wrap', 31 * MIN),
          use('a', 'v1', 'unwrap', -5 * MIN, 99), // before the rotation
          { ...use('b', 'v1', 'unwrap', now - MIN), crk: 'another' },
        ],
      }),
    );
    assert.deepEqual(s.reasons, []);
    assert.equal(s.safeToDisable, true);
    assert.deepEqual(
      s.clusters.map((c) => [c.cluster, c.converged, c.newVersionSeen]),
      [['a', true, true]],
    );
    assert.equal(s.quietSince, minute(31 * MIN));
    assert.deepEqual(
      s.clusters[0]?.nodes.map((n) => [n.node, n.converged, n.stale]),
      [
        ['m1', true, false],
        ['m2', true, false],
        ['m3', false, true],
      ],
    );
  });

  it('counts uses in the minute the rotation started, and says how long the window has been quiet', () => {
    const s = rotationStatus(
      input({
        rotation: { ...ROTATION, startedAt: at(30_000) },
        now: new Date(T0 + 5 * MIN),
        usage: [use('a', 'v2', 'unwrap', 10_000)],
      }),
    );
    assert.equal(s.clusters[0]?.oldVersionUse[0]?.unwraps, 1);
    assert.equal(s.quietSince, at(MIN));
    assert.deepEqual(s.reasons.slice(-1), ['quiet for 4m of the 1h window']);
    // A cluster seen only through its usage has no node to converge: only the quiet window blocks.
    assert.equal(s.clusters[0]?.converged, false);
    assert.equal(s.reasons.length, 2);
  });

  it('blocks on a cluster whose every node is stale, and on a node with no version yet', () => {
    const now = 2 * 60 * MIN;
    const s = rotationStatus(
      input({ nodes: [node('gone', 'm1', 'v3', 6 * MIN, now), node('new', 'n1', undefined, 0, now)] }),
    );
    assert.deepEqual(s.reasons, [
      'cluster gone: no node reported in the last 5m (stale: m1)',
      'cluster new: node n1 reports no key version yet',
    ]);
  });

  it('is safe with no fleet data after a quiet window, and names a rotation to a version the key lost', () => {
    assert.equal(rotationStatus(input({})).safeToDisable, true);
    const lost = rotationStatus(input({ rotation: { ...ROTATION, toVersion: 'v9' } }));
    assert.equal(lost.safeToDisable, false);
    assert.match(lost.reasons[0] ?? '', /version v9 is not a version of this key/);
  });

  it('writes short durations', () => {
    assert.deepEqual([45_000, 4 * MIN, 60 * MIN, 90 * MIN, 51 * 60 * MIN, 48 * 60 * MIN].map(duration), [
      '45s',
      '4m',
      '1h',
      '1h30m',
      '2d3h',
      '2d',
    ]);
  });
});

const versionArb = fc.constantFrom('v1', 'v2', 'v3', 'v4', 'vX');
const clusterArb = fc.constantFrom('a', 'b', 'c');
const nowMs = 3 * 60 * MIN;
const nodeArb = fc
  .record({
    cluster: clusterArb,
    name: fc.constantFrom('m1', 'm2', 'm3'),
    version: fc.option(versionArb, { nil: undefined }),
    ago: fc.integer({ min: 0, max: 20 * MIN }),
  })
  .map((n) => node(n.cluster, n.name, n.version, n.ago, nowMs));
const useArb = fc
  .record({
    cluster: clusterArb,
    version: versionArb,
    op: fc.constantFrom<UsageOp>('wrap', 'unwrap', 'rewrap'),
    t: fc.integer({ min: -30 * MIN, max: nowMs }),
    count: fc.integer({ min: 1, max: 50 }),
  })
  .map((u) => use(u.cluster, u.version, u.op, u.t, u.count));
const caseArb = fc.record({
  nodes: fc.uniqueArray(nodeArb, { selector: (n) => `${n.cluster}/${n.node}`, maxLength: 8 }),
  usage: fc.array(useArb, { maxLength: 12 }),
  quietMin: fc.integer({ min: 0, max: 240 }),
});
const run = (c: { nodes: NodeRecord[]; usage: UsageCount[]; quietMin: number }) =>
  rotationStatus(
    input({ nodes: c.nodes, usage: c.usage, now: new Date(T0 + nowMs), quietWindowMs: c.quietMin * MIN }),
  );

describe('rotationStatus properties', () => {
  it('safe exactly when every cluster with a node converged and the old versions were quiet for the window', () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const s = run(c);
        const withNodes = s.clusters.filter((k) => k.nodes.length > 0);
        const quiet = T0 + nowMs - Date.parse(s.quietSince ?? '') >= c.quietMin * MIN;
        assert.equal(s.safeToDisable, withNodes.every((k) => k.converged) && quiet);
        assert.equal(s.safeToDisable, s.reasons.length === 0);
        assert.ok(Date.parse(s.quietSince ?? '') >= T0, 'the window never starts before the rotation');
        for (const k of s.clusters) {
          const fresh = k.nodes.filter((n) => !n.stale);
          assert.equal(k.converged, fresh.length > 0 && fresh.every((n) => n.converged));
          for (const v of k.oldVersionUse) assert.ok(['v1', 'v2'].includes(v.version));
        }
      }),
    );
  });

  it('one more use of an old version, or one more lagging fresh node, never makes a rotation safe', () => {
    fc.assert(
      fc.property(caseArb, useArb, clusterArb, (c, extra, cluster) => {
        const before = run(c).safeToDisable;
        const old = { ...extra, version: 'v2' };
        assert.ok(!run({ ...c, usage: [...c.usage, old] }).safeToDisable || before);
        const lagging = node(cluster, 'late', 'v1', 0, nowMs);
        assert.equal(run({ ...c, nodes: [...c.nodes, lagging] }).safeToDisable, false);
      }),
    );
  });

  it('ignores stale nodes unless they are all a cluster has', () => {
    fc.assert(
      fc.property(caseArb, versionArb, (c, v) => {
        const s = run(c);
        const stale = node('a', 'old-one', v, 10 * MIN, nowMs);
        const t = run({
          ...c,
          nodes: [...c.nodes.filter((n) => !(n.cluster === 'a' && n.node === 'old-one')), stale],
        });
        const a = s.clusters.find((k) => k.cluster === 'a');
        if (a?.nodes.some((n) => !n.stale)) {
          assert.equal(t.clusters.find((k) => k.cluster === 'a')?.converged, a.converged);
          assert.equal(t.safeToDisable, s.safeToDisable);
        }
      }),
    );
  });
});
