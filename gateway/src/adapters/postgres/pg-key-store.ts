import type { KeyState } from '@keygate/shared/api';
import { KeygateError } from '@keygate/shared/errors';
import type { KeyLookup, KeyRecord, KeyStore, KeyVersionRecord } from '../../core/keys/key-store.js';
import type { StoreChange } from '../../core/store-changes.js';
import { type PgClient, type PgDatabase, recordChange } from './pg-database.js';

interface KeyRow {
  instance: string;
  id: string;
  name: string;
  description: string | null;
  state: number;
  creation_date: Date;
  last_update_date: Date;
}

interface VersionRow {
  key_id: string;
  id: string;
  creation_date: Date;
  disabled_at: Date | null;
}

const VERSION_COLUMNS = 'key_id, id, creation_date, disabled_at';

const KEY_COLUMNS = 'instance, id, name, description, state, creation_date, last_update_date';

/** Most key records one replica keeps (a cache of the hot path; misses read the database). */
const CACHE_MAX = 10_000;

/**
 * The key store in PostgreSQL (tables keygate_keys and keygate_key_versions), shared by every
 * gateway replica. Each change is one transaction that takes the key's row lock, applies the
 * change to the latest committed state and announces it on the change feed in the same
 * transaction. Reads on the request path come from a per-replica cache that the change feed
 * empties (the key on a `key` change, everything on `all`); the cache is used only while the feed
 * is listening, so a replica that may have missed a change reads the database instead.
 */
export class PostgresKeyStore implements KeyStore {
  readonly #db: PgDatabase;
  readonly #cache = new Map<string, KeyRecord>();
  /** Bumped on every change heard: a read that started before it must not fill the cache. */
  #epoch = 0;
  #unsubscribe: (() => void) | undefined;

  constructor(db: PgDatabase) {
    this.#db = db;
  }

  async open(): Promise<void> {
    this.#unsubscribe ??= this.#db.onChange((change) => this.#heard(change));
    await this.#db.open();
  }

  status(): { ready: boolean; reasons: readonly string[] } {
    return this.#db.status();
  }

  async close(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#cache.clear();
  }

  async create(record: KeyRecord): Promise<void> {
    await this.#db.tx(async (client) => {
      try {
        await client.query(`INSERT INTO keygate_keys (${KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)`, [
          record.instance,
          record.id,
          record.name,
          record.description ?? null,
          record.state,
          record.creationDate,
          record.lastUpdateDate,
        ]);
      } catch (err) {
        if ((err as { code?: string }).code === '23505') {
          throw new KeygateError('KEY_ALREADY_EXISTS_ERR', { detail: { instance: record.instance } });
        }
        throw err;
      }
      await insertVersions(client, record, 0);
      await recordChange(client, { kind: 'key', instance: record.instance, id: record.id });
    });
    this.#forget(record.instance, record.id);
  }

  async get(instance: string, id: string, lookup: KeyLookup = {}): Promise<KeyRecord | undefined> {
    const k = cacheKey(instance, id);
    const trusted = this.#db.listening;
    if (lookup.fresh !== true && trusted) {
      const hit = this.#cache.get(k);
      if (hit !== undefined) return hit;
    }
    const epoch = this.#epoch;
    const r = await this.#db.query<KeyRow>(
      `SELECT ${KEY_COLUMNS} FROM keygate_keys WHERE instance = $1 AND id = $2`,
      [instance, id],
    );
    const row = r.rows[0];
    if (row === undefined) return undefined;
    const versions = await this.#db.query<VersionRow>(
      `SELECT ${VERSION_COLUMNS} FROM keygate_key_versions WHERE instance = $1 AND key_id = $2 ORDER BY position`,
      [instance, id],
    );
    const record = toRecord(row, versions.rows);
    if (trusted && this.#db.listening && epoch === this.#epoch) this.#remember(k, record);
    return record;
  }

  async list(instance: string): Promise<readonly KeyRecord[]> {
    const keys = await this.#db.query<KeyRow>(
      `SELECT ${KEY_COLUMNS} FROM keygate_keys WHERE instance = $1 ORDER BY created_seq`,
      [instance],
    );
    if (keys.rows.length === 0) return [];
    const versions = await this.#db.query<VersionRow>(
      `SELECT ${VERSION_COLUMNS} FROM keygate_key_versions WHERE instance = $1 ORDER BY key_id, position`,
      [instance],
    );
    const byKey = new Map<string, VersionRow[]>();
    for (const v of versions.rows) {
      const list = byKey.get(v.key_id);
      if (list === undefined) byKey.set(v.key_id, [v]);
      else list.push(v);
    }
    return keys.rows.map((row) => toRecord(row, byKey.get(row.id) ?? []));
  }

  async update(instance: string, id: string, change: (current: KeyRecord) => KeyRecord): Promise<KeyRecord> {
    const out = await this.#db.tx(async (client) => {
      const r = await client.query<KeyRow>(
        `SELECT ${KEY_COLUMNS} FROM keygate_keys WHERE instance = $1 AND id = $2 FOR UPDATE`,
        [instance, id],
      );
      const row = r.rows[0];
      if (row === undefined) throw new KeygateError('KEY_NOT_FOUND_ERR', { detail: { instance, keyId: id } });
      const versions = await client.query<VersionRow>(
        `SELECT ${VERSION_COLUMNS} FROM keygate_key_versions WHERE instance = $1 AND key_id = $2 ORDER BY position`,
        [instance, id],
      );
      const current = toRecord(row, versions.rows);
      const next = change(current);
      if (next === current) return current;
      assertSameKey(current, next);
      await client.query(
        'UPDATE keygate_keys SET name = $3, description = $4, state = $5, last_update_date = $6 WHERE instance = $1 AND id = $2',
        [instance, id, next.name, next.description ?? null, next.state, next.lastUpdateDate],
      );
      await updateDisabled(client, current, next);
      await insertVersions(client, next, current.versions.length);
      await recordChange(client, { kind: 'key', instance, id });
      return next;
    });
    this.#forget(instance, id);
    return out;
  }

  async reserveEncryptions(
    instance: string,
    keyId: string,
    versionId: string,
    count: number,
  ): Promise<number> {
    if (!Number.isSafeInteger(count) || count < 0) throw new RangeError('count: an integer >= 0');
    // One statement: the row lock serialises replicas, and each gets the total after its own add.
    const r = await this.#db.query<{ encryptions_reserved: string }>(
      `UPDATE keygate_key_versions SET encryptions_reserved = encryptions_reserved + $4
        WHERE instance = $1 AND key_id = $2 AND id = $3 RETURNING encryptions_reserved`,
      [instance, keyId, versionId, count],
    );
    const row = r.rows[0];
    if (row === undefined) throw new KeygateError('KEY_NOT_FOUND_ERR', { detail: { instance, keyId } });
    return Number(row.encryptions_reserved);
  }

  /** Whether an ordinary get() of the key would be answered from this replica's cache now. */
  isCached(instance: string, id: string): boolean {
    return this.#db.listening && this.#cache.has(cacheKey(instance, id));
  }

  #heard(change: StoreChange): void {
    this.#epoch++;
    if (change.kind === 'key') this.#forget(change.instance, change.id);
    else if (change.kind === 'all') this.#cache.clear();
  }

  #forget(instance: string, id: string): void {
    this.#epoch++;
    this.#cache.delete(cacheKey(instance, id));
  }

  #remember(k: string, record: KeyRecord): void {
    if (this.#cache.size >= CACHE_MAX && !this.#cache.has(k)) {
      const oldest = this.#cache.keys().next().value;
      if (oldest !== undefined) this.#cache.delete(oldest);
    }
    this.#cache.set(k, record);
  }
}

function cacheKey(instance: string, id: string): string {
  return `${instance}\u0000${id}`;
}

async function insertVersions(client: PgClient, record: KeyRecord, from: number): Promise<void> {
  for (let i = from; i < record.versions.length; i++) {
    const v = record.versions[i] as KeyVersionRecord;
    await client.query(
      'INSERT INTO keygate_key_versions (instance, key_id, id, position, creation_date, disabled_at) VALUES ($1, $2, $3, $4, $5, $6)',
      [record.instance, record.id, v.id, i, v.creationDate, v.disabledAt ?? null],
    );
  }
}

/** Writes the versions whose disabledAt changed (keys disable-version / enable-version). */
async function updateDisabled(client: PgClient, current: KeyRecord, next: KeyRecord): Promise<void> {
  for (const [i, v] of current.versions.entries()) {
    const to = next.versions[i]?.disabledAt;
    if (to === v.disabledAt) continue;
    await client.query(
      'UPDATE keygate_key_versions SET disabled_at = $4 WHERE instance = $1 AND key_id = $2 AND id = $3',
      [current.instance, current.id, v.id, to ?? null],
    );
  }
}

/** Versions are only ever appended and a key keeps its identity: anything else is a bug, not data. */
function assertSameKey(current: KeyRecord, next: KeyRecord): void {
  const kept =
    next.instance === current.instance &&
    next.id === current.id &&
    next.versions.length >= current.versions.length &&
    current.versions.every((v, i) => next.versions[i]?.id === v.id);
  if (!kept) throw new RangeError(`key ${current.id}: an update may only append versions`);
}

function toRecord(row: KeyRow, versions: readonly VersionRow[]): KeyRecord {
  return {
    instance: row.instance,
    id: row.id,
    name: row.name,
    ...(row.description === null ? {} : { description: row.description }),
    state: row.state as KeyState,
    creationDate: row.creation_date.toISOString(),
    lastUpdateDate: row.last_update_date.toISOString(),
    versions: versions.map((v) => ({
      id: v.id,
      creationDate: v.creation_date.toISOString(),
      ...(v.disabled_at === null ? {} : { disabledAt: v.disabled_at.toISOString() }),
    })),
  };
}
