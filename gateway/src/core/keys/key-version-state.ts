import { KeyState } from '@keygate/shared/api';
import { KeygateError } from '@keygate/shared/errors';
import type { KeyDeps } from './key-deps.js';
import { currentVersion, type KeyRecord, type KeyVersionRecord } from './key-store.js';

/**
 * Disables or re-enables one version of a root key (docs/rotation.md). A disabled version's HSM
 * object stays, but the gateway refuses to unwrap or rewrap blobs made under it
 * (KEY_VERSION_DISABLED_ERR): the step between "every Secret was re-encrypted" and destroying
 * the key, which can be undone. The current version cannot be disabled (KEY_VERSION_CURRENT_ERR),
 * so wraps never meet a disabled version. Disabling a disabled version (or enabling an enabled
 * one) changes nothing. The convergence guard (ROTATION_NOT_CONVERGED) is the caller's, in
 * core/fleet/version-guard.ts.
 */
export async function setVersionEnabled(
  deps: KeyDeps,
  instance: string,
  id: string,
  versionId: string,
  enabled: boolean,
): Promise<KeyRecord> {
  const now = deps.clock.now().toISOString();
  return deps.store.update(instance, id, (cur) => {
    if (cur.state === KeyState.DESTROYED)
      throw new KeygateError('KEY_DELETED_ERR', { detail: { keyId: id } });
    const i = cur.versions.findIndex((v) => v.id === versionId);
    const version = cur.versions[i];
    if (version === undefined) {
      throw new KeygateError('NOT_FOUND_ERR', { detail: { keyId: id, keyVersion: versionId } });
    }
    if (!enabled && currentVersion(cur).id === versionId) {
      throw new KeygateError('KEY_VERSION_CURRENT_ERR', { detail: { keyId: id, keyVersion: versionId } });
    }
    if (isDisabled(version) === !enabled) return cur;
    const next: KeyVersionRecord = enabled
      ? { id: version.id, creationDate: version.creationDate }
      : { ...version, disabledAt: now };
    return { ...cur, lastUpdateDate: now, versions: cur.versions.map((v, j) => (j === i ? next : v)) };
  });
}

/** True when the version was disabled (keys disable-version). */
export function isDisabled(version: KeyVersionRecord): boolean {
  return version.disabledAt !== undefined;
}
