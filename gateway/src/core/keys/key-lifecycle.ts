import { KeyState } from '@keygate/shared/api';
import { KeygateError } from '@keygate/shared/errors';
import { newId } from './ids.js';
import type { KeyDeps } from './key-deps.js';
import { assertUsable, loadKey } from './key-deps.js';
import { currentVersion, type KeyRecord } from './key-store.js';

/** Input of createKey. `name` is already validated by the transport. */
export interface CreateKeyInput {
  readonly instance: string;
  readonly name: string;
  readonly description?: string | undefined;
}

/** Creates a CRK: a new HSM key object (its first version), then its record. */
export async function createKey(deps: KeyDeps, input: CreateKeyInput): Promise<KeyRecord> {
  const id = newId(deps.random);
  const versionId = newId(deps.random);
  const now = deps.clock.now().toISOString();
  const ref = { instance: input.instance, crkId: id, versionId };
  await deps.hsm.generateKey(ref);
  const record: KeyRecord = {
    instance: input.instance,
    id,
    name: input.name,
    description: input.description,
    state: KeyState.ACTIVE,
    creationDate: now,
    lastUpdateDate: now,
    versions: [{ id: versionId, creationDate: now }],
  };
  try {
    await deps.store.create(record);
  } catch (err) {
    // No record points at the new object: remove it so no orphan stays in the HSM.
    await deps.hsm.destroyKey(ref).catch(() => undefined);
    throw err;
  }
  return record;
}

/** Live keys of an instance (destroyed ones are left out). */
export async function listKeys(deps: KeyDeps, instance: string): Promise<readonly KeyRecord[]> {
  return (await deps.store.list(instance)).filter((k) => k.state !== KeyState.DESTROYED);
}

/** One key with its versions, destroyed ones included (state 5). */
export async function getKey(deps: KeyDeps, instance: string, id: string): Promise<KeyRecord> {
  return loadKey(deps, instance, id, { fresh: true });
}

/** Adds a new version (a new HSM object) that becomes current; old ones keep unwrapping. */
export async function rotateKey(deps: KeyDeps, instance: string, id: string): Promise<KeyRecord> {
  assertUsable(await loadKey(deps, instance, id, { fresh: true }));
  const versionId = newId(deps.random);
  const ref = { instance, crkId: id, versionId };
  await deps.hsm.generateKey(ref);
  const now = deps.clock.now().toISOString();
  try {
    return await deps.store.update(instance, id, (cur) => {
      assertUsable(cur);
      return {
        ...cur,
        lastUpdateDate: now,
        versions: [...cur.versions, { id: versionId, creationDate: now }],
      };
    });
  } catch (err) {
    await deps.hsm.destroyKey(ref).catch(() => undefined);
    throw err;
  }
}

/**
 * Rotates unless `fromVersionId` is no longer the current version (another replica rotated it
 * first): the automatic rotation of the usage limits, at most once per version across replicas.
 * Returns the latest record and whether this call added the version.
 */
export async function rotateKeyFrom(
  deps: KeyDeps,
  instance: string,
  id: string,
  fromVersionId: string,
): Promise<{ readonly record: KeyRecord; readonly rotated: boolean }> {
  const seen = await loadKey(deps, instance, id, { fresh: true });
  assertUsable(seen);
  if (currentVersion(seen).id !== fromVersionId) return { record: seen, rotated: false };
  const versionId = newId(deps.random);
  const ref = { instance, crkId: id, versionId };
  await deps.hsm.generateKey(ref);
  const now = deps.clock.now().toISOString();
  let rotated = false;
  try {
    const record = await deps.store.update(instance, id, (cur) => {
      assertUsable(cur);
      if (currentVersion(cur).id !== fromVersionId) return cur;
      rotated = true;
      return {
        ...cur,
        lastUpdateDate: now,
        versions: [...cur.versions, { id: versionId, creationDate: now }],
      };
    });
    if (!rotated) await deps.hsm.destroyKey(ref).catch(() => undefined);
    return { record, rotated };
  } catch (err) {
    await deps.hsm.destroyKey(ref).catch(() => undefined);
    throw err;
  }
}

/** Suspends (disable) or re-activates (enable) a key; KEY_ACTION_INVALID_STATE_ERR from any other state. */
export async function setKeyEnabled(
  deps: KeyDeps,
  instance: string,
  id: string,
  enabled: boolean,
): Promise<KeyRecord> {
  const from = enabled ? KeyState.SUSPENDED : KeyState.ACTIVE;
  const to = enabled ? KeyState.ACTIVE : KeyState.SUSPENDED;
  const now = deps.clock.now().toISOString();
  return deps.store.update(instance, id, (cur) => {
    if (cur.state === KeyState.DESTROYED)
      throw new KeygateError('KEY_DELETED_ERR', { detail: { keyId: id } });
    if (cur.state !== from) {
      throw new KeygateError('KEY_ACTION_INVALID_STATE_ERR', { detail: { keyId: id, state: cur.state } });
    }
    return { ...cur, state: to, lastUpdateDate: now };
  });
}

/**
 * Destroys a key: marks it destroyed (no more wraps anywhere), then deletes every HSM object of
 * every version (crypto-shredding). Destroying a destroyed key re-runs the deletion, so a half-done
 * destroy heals, and then answers KEY_DELETED_ERR as Key Protect does (410: already deleted).
 */
export async function destroyKey(deps: KeyDeps, instance: string, id: string): Promise<KeyRecord> {
  const now = deps.clock.now().toISOString();
  let already = false;
  const record = await deps.store.update(instance, id, (cur) => {
    already = cur.state === KeyState.DESTROYED;
    return already ? cur : { ...cur, state: KeyState.DESTROYED, lastUpdateDate: now };
  });
  for (const v of record.versions) await deps.hsm.destroyKey({ instance, crkId: id, versionId: v.id });
  if (already) throw new KeygateError('KEY_DELETED_ERR', { detail: { keyId: id } });
  return record;
}
