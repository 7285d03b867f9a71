import type { Clock } from '@keygate/shared';
import { KeyState } from '@keygate/shared/api';
import type { Random } from '@keygate/shared/crypto';
import { KeygateError } from '@keygate/shared/errors';
import type { Hsm } from './hsm.js';
import type { KeyLookup, KeyRecord, KeyStore, KeyVersionRecord } from './key-store.js';

/** Counts encryptions per key version (usage-budget.ts: UsageBudget). */
export interface EncryptionBudget {
  /**
   * Spends one encryption of the version to encrypt under now: the current one, or a new one
   * after an automatic rotation. KEY_USAGE_LIMIT_ERR when the policy refuses.
   */
  take(deps: KeyDeps, key: KeyRecord): Promise<KeyVersionRecord>;
}

/** What the key use cases need: the four ports, and the optional usage limits. */
export interface KeyDeps {
  readonly hsm: Hsm;
  readonly store: KeyStore;
  readonly clock: Clock;
  readonly random: Random;
  /** Absent: encryptions are not counted (tests, tools). */
  readonly usage?: EncryptionBudget | undefined;
  /**
   * Unwrap of a blob under an older version also returns it re-wrapped under the current one
   * (Key Protect's behaviour). Off by default: every re-wrap spends the current version's budget,
   * and the shim discards the result.
   */
  readonly rewrapOnUnwrap?: boolean | undefined;
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
