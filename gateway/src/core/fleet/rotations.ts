import { asKeygateError } from '@keygate/shared/errors';
import type { KeyRecord } from '../keys/key-store.js';
import type { FleetStore, RotationRecord } from './fleet.js';

/** Where a rotation that could not be recorded is told (a request's or the CLI's logger). */
export interface RotationLog {
  warn(fields: object, message: string): void;
}

/**
 * Records the rotation `keys rotate` (CLI or API) just made, so `keys rotation status` can follow
 * it (docs/rotation.md): from the version before the new current one to the new one. The key is
 * rotated already: a fleet store that fails (or no fleet store) never fails the rotation; the
 * failure is logged at warn, and the status then shows the previous rotation (or none).
 */
export async function recordRotation(
  fleet: FleetStore | undefined,
  log: RotationLog,
  rotated: KeyRecord,
  startedBy: string,
  startedAt: Date,
): Promise<void> {
  const to = rotated.versions[rotated.versions.length - 1];
  const from = rotated.versions[rotated.versions.length - 2];
  if (fleet === undefined || to === undefined || from === undefined) return;
  await startRotationSafely(fleet, log, {
    instance: rotated.instance,
    crk: rotated.id,
    fromVersion: from.id,
    toVersion: to.id,
    startedAt: startedAt.toISOString(),
    startedBy,
  });
}

/** fleet.startRotation, with a failure logged at warn instead of thrown (the key rotated anyway). */
export async function startRotationSafely(
  fleet: FleetStore,
  log: RotationLog,
  record: RotationRecord,
): Promise<void> {
  try {
    await fleet.startRotation(record);
  } catch (err) {
    log.warn(
      {
        err: asKeygateError(err).toLog(),
        instance: record.instance,
        keyId: record.crk,
        keyVersion: record.toVersion,
      },
      'rotation not recorded in the fleet store (the key was rotated; keys rotation status will not follow it)',
    );
  }
}
