import { COLLECTION_TYPES, type KeyCollection, type KeyResource } from '@keygate/shared/api';
import { currentVersion, type KeyRecord } from '../core/keys/key-store.js';

/** A key record as Key Protect shows it (never key material). */
export function toKeyResource(k: KeyRecord): KeyResource {
  const cur = currentVersion(k);
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
    keyVersion: { id: cur.id, creationDate: cur.creationDate },
    versions: k.versions.map((v) => ({ id: v.id, creationDate: v.creationDate })),
  };
}

/** Key Protect's key collection around `keys`. */
export function keyCollection(keys: readonly KeyRecord[]): KeyCollection {
  return {
    metadata: { collectionType: COLLECTION_TYPES.key, collectionTotal: keys.length },
    resources: keys.map(toKeyResource),
  };
}
