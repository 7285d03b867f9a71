import { isKeygateError, KeygateError } from '@keygate/shared/errors';
import type { KeyService } from '../keys/key-service.js';
import { currentVersion, type KeyRecord } from '../keys/key-store.js';
import type { RotationQueries } from './rotation-view.js';

export interface VersionGuardDeps {
  readonly keys: Pick<KeyService, 'get' | 'disableVersion'>;
  /** Absent (no fleet store): nothing proves convergence, so only a forced disable goes through. */
  readonly rotations?: RotationQueries | undefined;
}

export interface DisabledVersion {
  readonly key: KeyRecord;
  /** `--force` / `{"force":true}` was given (the audit record says so). */
  readonly forced: boolean;
}

/**
 * `keys disable-version` (CLI, API, console): disables an older version of a key only when its
 * latest rotation moved away from that version and is safe (rotation-status.ts: every node
 * converged, old versions quiet for the window); otherwise ROTATION_NOT_CONVERGED with the
 * reasons (rotationReasons), unless forced. The current version is KEY_VERSION_CURRENT_ERR and an
 * unknown one NOT_FOUND_ERR, forced or not.
 */
export async function disableVersionGuarded(
  deps: VersionGuardDeps,
  instance: string,
  id: string,
  versionId: string,
  force: boolean,
): Promise<DisabledVersion> {
  const key = await deps.keys.get(instance, id);
  const index = key.versions.findIndex((v) => v.id === versionId);
  if (index < 0) throw new KeygateError('NOT_FOUND_ERR', { detail: { keyId: id, keyVersion: versionId } });
  if (currentVersion(key).id === versionId) {
    throw new KeygateError('KEY_VERSION_CURRENT_ERR', { detail: { keyId: id, keyVersion: versionId } });
  }
  if (!force && key.versions[index]?.disabledAt === undefined) {
    const reasons = await blockers(deps, key, index);
    if (reasons.length > 0) {
      throw new KeygateError('ROTATION_NOT_CONVERGED', {
        detail: { keyId: id, keyVersion: versionId, reasons: reasons.join('\n') },
      });
    }
  }
  return { key: await deps.keys.disableVersion(instance, id, versionId), forced: force };
}

async function blockers(deps: VersionGuardDeps, key: KeyRecord, index: number): Promise<readonly string[]> {
  const version = key.versions[index]?.id ?? '';
  if (deps.rotations === undefined) {
    return [`this gateway has no fleet store: nothing shows that every cluster left version ${version}`];
  }
  const status = await deps.rotations.status(key.instance, key.id);
  if (status === undefined) {
    return [`no rotation of this key was recorded: nothing shows that every cluster left version ${version}`];
  }
  const to = key.versions.findIndex((v) => v.id === status.rotation.toVersion);
  if (to <= index) {
    return [
      `the latest recorded rotation (to version ${status.rotation.toVersion}) did not move away from version ${version}`,
    ];
  }
  return status.reasons;
}

/** The reasons a ROTATION_NOT_CONVERGED refusal carries (none for any other error). */
export function rotationReasons(err: unknown): readonly string[] {
  if (!isKeygateError(err) || err.code !== 'ROTATION_NOT_CONVERGED') return [];
  const r = err.detail?.reasons;
  return typeof r === 'string' && r !== '' ? r.split('\n') : [];
}
