import type { Clock } from '@keygate/shared';
import { KeyState } from '@keygate/shared/api';
import type { Random } from '@keygate/shared/crypto';
import { KeygateError } from '@keygate/shared/errors';
import type { Hsm } from './hsm.js';
import type { KeyLookup, KeyRecord, KeyStore } from './key-store.js';

/** What the key use cases need: the four ports. */
export interface KeyDeps {
  readonly hsm: Hsm;
  readonly store: KeyStore;
  readonly clock: Clock;
  readonly random: Random;
}

/** Loads a key; KEY_NOT_FOUND_ERR when the instance has no such key. */
export async function loadKey(
  deps: KeyDeps,
  instance: string,
  id: string,
  lookup?: KeyLookup,
): Promise<KeyRecord> {
  const key = await deps.store.get(instance, id, lookup);
  if (key === undefined) throw new KeygateError('KEY_NOT_FOUND_ERR', { detail: { instance, keyId: id } });
  return key;
}

/** Throws unless the key may wrap and unwrap: KEY_DELETED_ERR or KEY_ACTION_INVALID_STATE_ERR. */
export function assertUsable(key: KeyRecord): void {
  if (key.state === KeyState.DESTROYED)
    throw new KeygateError('KEY_DELETED_ERR', { detail: { keyId: key.id } });
  if (key.state !== KeyState.ACTIVE) {
    throw new KeygateError('KEY_ACTION_INVALID_STATE_ERR', { detail: { keyId: key.id, state: key.state } });
  }
}
