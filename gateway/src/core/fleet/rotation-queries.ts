import type { Clock } from '@keygate/shared';
import type { KeyRecord } from '../keys/key-store.js';
import type { FleetStore } from './fleet.js';
import { rotationStatus } from './rotation-status.js';
import type { RotationQueries, RotationStatus } from './rotation-view.js';

/** How long a node may be silent before it counts as stale, when the fleet settings do not say. */
export const DEFAULT_STALE_AFTER_MS = 5 * 60_000;

export interface RotationQueryDeps {
  /** The key with its versions (KeyService.get: KEY_NOT_FOUND_ERR when absent). */
  readonly getKey: (instance: string, crk: string) => Promise<KeyRecord>;
  readonly fleet: FleetStore;
  readonly clock: Clock;
  /** `rotation.quietWindow` (config-rotation.ts). */
  readonly quietWindowMs: number;
  /** The fleet's stale bound (fleet.staleAfter); DEFAULT_STALE_AFTER_MS when absent. */
  readonly staleAfterMs?: number | undefined;
}

/**
 * The latest rotation of a key with its status, from the key store (versions), the fleet store
 * (rotations, node reports, usage since the rotation) and the clock: what the CLI, the API and
 * the console show.
 */
export class FleetRotationQueries implements RotationQueries {
  readonly #deps: RotationQueryDeps;

  constructor(deps: RotationQueryDeps) {
    this.#deps = deps;
  }

  async status(instance: string, crk: string): Promise<RotationStatus | undefined> {
    const d = this.#deps;
    const key = await d.getKey(instance, crk);
    const [rotation] = await d.fleet.rotations(instance, crk);
    if (rotation === undefined) return undefined;
    const since = new Date(Math.floor(Date.parse(rotation.startedAt) / 60_000) * 60_000);
    const [nodes, usage] = await Promise.all([d.fleet.nodes(), d.fleet.usage({ since, instance, crk })]);
    return rotationStatus({
      rotation,
      key,
      nodes,
      usage,
      now: d.clock.now(),
      staleAfterMs: d.staleAfterMs ?? DEFAULT_STALE_AFTER_MS,
      quietWindowMs: d.quietWindowMs,
    });
  }
}
