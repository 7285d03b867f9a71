import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fleetView } from './core/fleet/fleet-view.js';
import { ago, formatFleet } from './fleet-command.js';

describe('keygate-gateway fleet (text)', () => {
  it('prints clusters, their nodes with key_id, health and last seen, STALE, and last-hour use', () => {
    const now = new Date('2026-12-06T01:00:00.000Z');
    const base = {
      instance: 'inst-a',
      crk: 'crk-1',
      shimVersion: '0.1.0',
      apis: ['v2'],
      cacheSize: 4,
      replica: 'gw-0',
    };
    const view = fleetView(
      [
        {
          ...base,
          cluster: 'prod',
          node: 'm1',
          kmsKeyId: 'keygate/inst-a/crk-1/v2',
          keyVersion: 'v2',
          health: 'ok',
          lastSeen: '2026-12-06T00:59:48.000Z',
        },
        {
          ...base,
          cluster: 'prod',
          node: 'm2',
          health: 'gateway unreachable',
          lastSeen: '2026-12-06T00:40:00.000Z',
        },
      ],
      [
        {
          cluster: 'prod',
          instance: 'inst-a',
          crk: 'crk-1',
          version: 'v2',
          op: 'wrap',
          minute: '2026-12-06T00:59:00.000Z',
          count: 3,
        },
      ],
      now,
      180_000,
      new Date(now.getTime() - 3_600_000),
    );
    const text = formatFleet(view).join('\n');
    assert.match(text, /^cluster prod: 2 node\(s\), 1 STALE; last hour: 3 wraps, 0 unwraps, 0 rewraps/);
    assert.match(text, /m1 +inst-a\/crk-1 +keygate\/inst-a\/crk-1\/v2 +v2 +ok +4 +0\.1\.0 +12 s ago\n/);
    assert.match(text, /m2 .* gateway unreachable .* 20 min ago +STALE/);
    assert.match(text, /key inst-a\/crk-1 version v2: 3 wraps/);
    assert.deepEqual(formatFleet(fleetView([], [], now, 1000, now)), [
      'no shim has reported yet (docs/fleet.md)',
    ]);
  });

  it('says how long ago in the largest sensible unit', () => {
    assert.equal(ago(12_400), '12 s ago');
    assert.equal(ago(5 * 60_000), '5 min ago');
    assert.equal(ago(3 * 3_600_000), '3 h ago');
    assert.equal(ago(3 * 86_400_000), '3 d ago');
    assert.equal(ago(-5), 'in the future');
  });
});
