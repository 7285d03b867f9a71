import { KeyState } from '@keygate/shared/api';
import { KeygateError } from '@keygate/shared/errors';

/**
 * The key metadata store port: instances, CRK names, states and versions (never key material).
 * Embedded JSON file by default (adapters/store); a shared SQL database can implement it later.
 */

export interface KeyVersionRecord {
  readonly id: string;
  /** ISO 8601. */
  readonly creationDate: string;
  /**
   * ISO 8601: when the version was disabled (key-version-state.ts): blobs under it are not
   * unwrapped (KEY_VERSION_DISABLED_ERR) until it is enabled again. Absent: enabled.
   */
  readonly disabledAt?: string | undefined;
}

export interface KeyRecord {
  readonly instance: string;
  readonly id: string;
  readonly name: string;
  readonly description?: string | undefined;
  readonly state: KeyState;
  readonly creationDate: string;
  readonly lastUpdateDate: string;
  /** Oldest first; the last one is the current version. Kept after destroy (as tombstones). */
  readonly versions: readonly KeyVersionRecord[];
}

export interface KeyLookup {
  /** Re-read the backing store first (another process may have changed it). */
  readonly fresh?: boolean;
}

export interface KeyStore {
  /** Adds a key; KEY_ALREADY_EXISTS_ERR when the instance already has a live key of that name. */
  create(record: KeyRecord): Promise<void>;
  /** The key, or undefined. */
  get(instance: string, id: string, lookup?: KeyLookup): Promise<KeyRecord | undefined>;
  /** Every key of an instance, destroyed ones included, oldest first. */
  list(instance: string): Promise<readonly KeyRecord[]>;
  /**
   * Atomic read-modify-write of one key (under the store's lock, on its latest state).
   * `change` may throw a KeygateError to abort. KEY_NOT_FOUND_ERR when the key is absent.
   */
  update(instance: string, id: string, change: (current: KeyRecord) => KeyRecord): Promise<KeyRecord>;
  /**
   * Atomically adds `count` (>= 0; 0 only reads) to the encryptions reserved under one key
   * version and returns the new total. Replicas reserve blocks and spend them in memory, so the
   * total is an upper bound on the encryptions made under the version (usage-budget.ts). Not part
   * of KeyRecord and announces no change: no replica's cached record depends on it.
   * KEY_NOT_FOUND_ERR when the key or the version is absent.
   */
  reserveEncryptions(instance: string, keyId: string, versionId: string, count: number): Promise<number>;
  /**
   * Checks the backing store once at start (and creates it when configured to), so status() is
   * true before the first request. Never throws for a bad store: status() reports it.
   */
  open(): Promise<void>;
  /** Human-readable health for /readyz. */
  status(): { readonly ready: boolean; readonly reasons: readonly string[] };
  close(): Promise<void>;
}

/** The current (newest) version of a key. */
export function currentVersion(key: KeyRecord): KeyVersionRecord {
  const v = key.versions[key.versions.length - 1];
  if (v === undefined) throw new RangeError(`key ${key.id} has no version`);
  return v;
}

/** KEY_ALREADY_EXISTS_ERR when `record`'s instance has a live key with its name. */
export function assertNameFree(existing: readonly KeyRecord[], record: KeyRecord): void {
  const clash = existing.some(
    (k) => k.instance === record.instance && k.name === record.name && k.state !== KeyState.DESTROYED,
  );
  if (clash) throw new KeygateError('KEY_ALREADY_EXISTS_ERR', { detail: { instance: record.instance } });
}
