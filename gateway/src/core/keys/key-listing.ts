import { KeyState } from '@keygate/shared/api';
import { KeygateError } from '@keygate/shared/errors';
import { type KeyDeps, loadKey } from './key-deps.js';
import type { KeyRecord, KeyVersionRecord } from './key-store.js';

/** A page of a longer list: the items asked for, and how many match in all. */
export interface Page<T> {
  readonly items: readonly T[];
  readonly total: number;
}

/** Which keys `GET /api/v2/keys` shows: Key Protect's `limit`, `offset`, `state` and `extractable`. */
export interface KeyListQuery {
  readonly limit: number;
  readonly offset: number;
  /** Key Protect state numbers to include (0..5). */
  readonly states: ReadonlySet<number>;
  /** true: only extractable (standard) keys, of which keygate has none; false or absent: every key. */
  readonly extractable?: boolean | undefined;
}

/** Which versions `GET /api/v2/keys/{id}/versions` shows. */
export interface VersionListQuery {
  readonly limit: number;
  readonly offset: number;
  /** Also list a destroyed key's versions (Key Protect's `allKeyStates`); else KEY_DELETED_ERR. */
  readonly allKeyStates: boolean;
}

/** Key Protect's default state filter: every state but destroyed (5). */
export const DEFAULT_LIST_STATES: ReadonlySet<number> = new Set([0, 1, 2, 3]);

const byId = (a: KeyRecord, b: KeyRecord) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function pageOf<T>(all: readonly T[], limit: number, offset: number): Page<T> {
  return { items: all.slice(offset, offset + limit), total: all.length };
}

/** One page of an instance's keys in the given states, in Key Protect's default order (by id). */
export async function listKeyPage(
  deps: KeyDeps,
  instance: string,
  q: KeyListQuery,
): Promise<Page<KeyRecord>> {
  // keygate keys are root keys (never extractable): asking for standard keys finds none.
  const keys = q.extractable === true ? [] : await deps.store.list(instance);
  return pageOf(keys.filter((k) => q.states.has(k.state)).sort(byId), q.limit, q.offset);
}

/**
 * One page of a key's versions, newest first (Key Protect lists them in reverse chronological
 * order). A destroyed key's versions only with `allKeyStates`; otherwise KEY_DELETED_ERR.
 */
export async function listVersionPage(
  deps: KeyDeps,
  instance: string,
  id: string,
  q: VersionListQuery,
): Promise<{ readonly key: KeyRecord; readonly page: Page<KeyVersionRecord> }> {
  const key = await loadKey(deps, instance, id, { fresh: true });
  if (key.state === KeyState.DESTROYED && !q.allKeyStates)
    throw new KeygateError('KEY_DELETED_ERR', { detail: { keyId: id } });
  return { key, page: pageOf([...key.versions].reverse(), q.limit, q.offset) };
}
