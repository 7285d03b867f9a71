import type { Clock } from '@keygate/shared';
import type { GatewayConfig } from './config.js';
import type { FleetStore } from './core/fleet/fleet.js';
import { FleetRotationQueries } from './core/fleet/rotation-queries.js';
import type { RotationQueries } from './core/fleet/rotation-view.js';
import { type RotationLog, startRotationSafely } from './core/fleet/rotations.js';
import type { KeyRuntime } from './key-runtime.js';
import { USAGE_LIMIT_SUBJECT } from './usage-audit.js';

/** What startGateway takes for guided rotation (docs/rotation.md). */
export interface RotationGatewayDeps {
  /**
   * Where rotations are recorded and node reports and usage are read. Absent: rotations are not
   * recorded, GET …/rotation answers 404 and disable-version needs `force`. When absent,
   * startGateway uses the config's fleet store (buildFleetStore), the one shim reports go to.
   */
  readonly fleet?: FleetStore | undefined;
}

/** The app's `rotations` (AppDeps) over the gateway's fleet store. */
export function rotationDeps(
  config: GatewayConfig,
  runtime: KeyRuntime,
  clock: Clock,
  fleet: FleetStore,
  staleAfterMs: number,
  log: RotationLog,
): { rotations: RotationQueries } {
  // keys.usageLimit rotates by itself: those rotations are followed like an operator's.
  runtime.onAutomaticRotation((e) =>
    startRotationSafely(fleet, log, {
      instance: e.instance,
      crk: e.keyId,
      fromVersion: e.fromVersionId,
      toVersion: e.toVersionId,
      startedAt: clock.now().toISOString(),
      startedBy: USAGE_LIMIT_SUBJECT,
    }),
  );
  const rotations = new FleetRotationQueries({
    getKey: (instance, crk) => runtime.keys.get(instance, crk),
    fleet,
    clock,
    quietWindowMs: config.rotation.quietWindow,
    staleAfterMs,
  });
  return { rotations };
}
