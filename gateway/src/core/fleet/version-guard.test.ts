import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { FakeHsm } from '../../testing/fake-hsm.js';
import { MemoryKeyStore } from '../../testing/memory-key-store.js';
import { createKeyService } from '../keys/key-service.js';
import type { FleetStore, RotationRecord } from './fleet.js';
import { FleetRotationQueries } from './rotation-queries.js';
import { recordRotation } from './rotations.js';
import { disableVersionGuarded, rotationReasons } from './version-guard.js';

/** A fleet store that only keeps rotations (or fails to): nodes and usage are empty. */
function rotationsOnly(fail = false): FleetStore & { readonly kept: RotationRecord[] } {
  const kept: RotationRecord[] = [];
  return {
    kept,
    noteNode: () => undefined,
    noteUse: () => undefined,
    nodes: async () => [],
    usage: async () => [],
    startRotation: async (r) => {
      if (fail) throw new Error('fleet store down');
      kept.push(r);
    },
    rotations: async (instance, crk) =>
      kept.filter((r) => r.instance === instance && r.crk === crk).reverse(),
    forgetCluster: async () => undefined,
    flush: async () => undefined,
    close: async () => undefined,
  };
}

async function setup(fail = false) {
  const random = seededRandom('version-guard');
  let t = Date.parse('2026-01-01T00:00:00Z');
  const clock = {
    now: () => {
      t += 1000;
      return new Date(t);
    },
  };
  const keys = createKeyService({ hsm: new FakeHsm(random), store: new MemoryKeyStore(), clock, random });
  const fleet = rotationsOnly(fail);
  const warnings: string[] = [];
  const log = { warn: (_: object, message: string) => warnings.push(message) };
  const key = await keys.create({ instance: 'inst', name: 'crk' });
  const rotations = new FleetRotationQueries({
    getKey: (i, k) => keys.get(i, k),
    fleet,
    clock,
    quietWindowMs: 60_000,
  });
  return { keys, fleet, warnings, log, key, rotations, clock, advance: (ms: number) => (t += ms) };
}

const refusedWith = (pattern: RegExp) => (e: unknown) =>
  isKeygateError(e) && e.code === 'ROTATION_NOT_CONVERGED' && rotationReasons(e).some((r) => pattern.test(r));

describe('recordRotation and the disable-version guard', () => {
  it('records from the previous to the new current version; a failing store only warns', async () => {
    const ok = await setup();
    const rotated = await ok.keys.rotate('inst', ok.key.id);
    await recordRotation(ok.fleet, ok.log, rotated, 'ops', new Date('2026-01-02T00:00:00Z'));
    assert.deepEqual(ok.fleet.kept, [
      {
        instance: 'inst',
        crk: ok.key.id,
        fromVersion: rotated.versions[0]?.id,
        toVersion: rotated.versions[1]?.id,
        startedAt: '2026-01-02T00:00:00.000Z',
        startedBy: 'ops',
      },
    ]);
    const bad = await setup(true);
    const r2 = await bad.keys.rotate('inst', bad.key.id);
    await recordRotation(bad.fleet, bad.log, r2, 'ops', new Date());
    assert.equal(bad.warnings.length, 1);
    assert.match(bad.warnings[0] ?? '', /rotation not recorded/);
    // Nothing to record: no fleet store, or a key with one version.
    await recordRotation(undefined, ok.log, rotated, 'ops', new Date());
    await recordRotation(ok.fleet, ok.log, ok.key, 'ops', new Date());
    assert.equal(ok.fleet.kept.length, 1);
  });

  it('refuses without a fleet store, without a rotation, and for a version the rotation did not leave', async () => {
    const s = await setup();
    const v1 = s.key.versions[0]?.id as string;
    const rotated = await s.keys.rotate('inst', s.key.id);
    const v2 = rotated.versions[1]?.id as string;
    await assert.rejects(
      disableVersionGuarded({ keys: s.keys }, 'inst', s.key.id, v1, false),
      refusedWith(/no fleet store/),
    );
    const deps = { keys: s.keys, rotations: s.rotations };
    await assert.rejects(
      disableVersionGuarded(deps, 'inst', s.key.id, v1, false),
      refusedWith(/no rotation of this key/),
    );
    // A rotation recorded to v2, then an unrecorded one (the usage limit's) to v3: v2 is not left by it.
    await recordRotation(s.fleet, s.log, rotated, 'ops', s.clock.now());
    const v3 = (await s.keys.rotate('inst', s.key.id)).versions[2]?.id as string;
    await assert.rejects(
      disableVersionGuarded(deps, 'inst', s.key.id, v2, false),
      refusedWith(/did not move away/),
    );
    await assert.rejects(disableVersionGuarded(deps, 'inst', s.key.id, v1, false), refusedWith(/^quiet for/));
    await assert.rejects(
      disableVersionGuarded(deps, 'inst', s.key.id, v3, true),
      (e: unknown) => isKeygateError(e) && e.code === 'KEY_VERSION_CURRENT_ERR',
    );
    await assert.rejects(
      disableVersionGuarded(deps, 'inst', s.key.id, 'nope', true),
      (e: unknown) => isKeygateError(e) && e.code === 'NOT_FOUND_ERR',
    );
  });

  it('disables once the quiet window passed, or at once with force (and says it was forced)', async () => {
    const s = await setup();
    const v1 = s.key.versions[0]?.id as string;
    const rotated = await s.keys.rotate('inst', s.key.id);
    await recordRotation(s.fleet, s.log, rotated, 'ops', s.clock.now());
    const deps = { keys: s.keys, rotations: s.rotations };
    const forced = await disableVersionGuarded(deps, 'inst', s.key.id, v1, true);
    assert.equal(forced.forced, true);
    assert.ok(forced.key.versions[0]?.disabledAt !== undefined);
    // Already disabled: no refusal, no change.
    const again = await disableVersionGuarded(deps, 'inst', s.key.id, v1, false);
    assert.deepEqual(again.key.versions, forced.key.versions);
    await s.keys.enableVersion('inst', s.key.id, v1);
    s.advance(61_000);
    const safe = await disableVersionGuarded(deps, 'inst', s.key.id, v1, false);
    assert.deepEqual([safe.forced, safe.key.versions[0]?.disabledAt !== undefined], [false, true]);
  });
});
