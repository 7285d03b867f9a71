import {
  COLLECTION_TYPES,
  type KeyCollection,
  type KeyResource,
  KeyState,
  type KeyVersionCollection,
} from '@keygate/shared/api';
import type { Page } from '../core/keys/key-listing.js';
import { currentVersion, type KeyRecord, type KeyVersionRecord } from '../core/keys/key-store.js';

/** A key record as Key Protect shows it (never key material). */
export function toKeyResource(k: KeyRecord): KeyResource {
  const cur = currentVersion(k);
  const deleted = k.state === KeyState.DESTROYED;
  return {
    type: COLLECTION_TYPES.key,
    id: k.id,
    name: k.name,
    ...(k.description === undefined ? {} : { description: k.description }),
    state: k.state,
    extractable: false,
    instanceId: k.instance,
    crn: `crn:v1:keygate:private:kms:local:a/keygate:${k.instance}:key:${k.id}`,
    creationDate: k.creationDate,
    lastUpdateDate: k.lastUpdateDate,
    // A version after the first is made by a rotation, so the current one's date is the last rotation.
    ...(k.versions.length > 1 ? { lastRotateDate: cur.creationDate } : {}),
    keyVersion: { id: cur.id, creationDate: cur.creationDate },
    versions: k.versions.map(versionResource),
    deleted,
    // Destroyed is final: nothing updates the key after it, so its last update is the deletion.
    ...(deleted ? { deletionDate: k.lastUpdateDate } : {}),
  };
}

/** Key Protect's key collection around `keys` (`collectionTotal`: how many are in this answer). */
export function keyCollection(keys: readonly KeyRecord[]): KeyCollection {
  return {
    metadata: { collectionType: COLLECTION_TYPES.key, collectionTotal: keys.length },
    resources: keys.map(toKeyResource),
  };
}

/** What `Prefer: return=minimal` gets on create: Key Protect's "only the key identifier". */
export function keyIdCollection(key: KeyRecord): {
  metadata: KeyCollection['metadata'];
  resources: { type: typeof COLLECTION_TYPES.key; id: string }[];
} {
  return {
    metadata: { collectionType: COLLECTION_TYPES.key, collectionTotal: 1 },
    resources: [{ type: COLLECTION_TYPES.key, id: key.id }],
  };
}

/** Key Protect's key version collection for one page (`totalCount` only when asked for). */
export function keyVersionCollection(page: Page<KeyVersionRecord>, withTotal: boolean): KeyVersionCollection {
  return {
    metadata: {
      collectionType: COLLECTION_TYPES.keyVersion,
      collectionTotal: page.items.length,
      ...(withTotal ? { totalCount: page.total } : {}),
    },
    resources: page.items.map(versionResource),
  };
}

/** A version as Key Protect shows it, plus keygate's `disabledAt` when disabled. */
function versionResource(v: KeyVersionRecord): { id: string; creationDate: string; disabledAt?: string } {
  return {
    id: v.id,
    creationDate: v.creationDate,
    ...(v.disabledAt === undefined ? {} : { disabledAt: v.disabledAt }),
  };
}
