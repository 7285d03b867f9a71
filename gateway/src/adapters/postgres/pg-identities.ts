import { constantTimeEqual, type Random, systemRandom } from '@keygate/shared/crypto';
import { KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import { generateApiKey, hashApiKey } from '../../core/auth/api-key.js';
import { API_KEY_LABEL } from '../../core/auth/identities.js';
import type { ServiceIdentity } from '../../core/auth/identity-directory.js';
import type {
  ApiKeyMatch,
  ApiKeyView,
  CreatedApiKey,
  IdentityAdmin,
  IdentityFields,
  IdentitySource,
  IdentityView,
} from '../../core/auth/identity-source.js';
import type { StoreChange } from '../../core/store-changes.js';
import { type PgDatabase, recordChange } from './pg-database.js';
import {
  type ApiKeyRow,
  checkFields,
  checkName,
  type IdentityRow,
  type Live,
  toIdentity,
  toKeyView,
  touch,
  toView,
} from './pg-identity-rows.js';
import { announceSigningKeys } from './pg-signing-keys.js';

/** While the first load of identities fails (database down), it is tried again this often. */
const RETRY_MS = 1000;

export interface PgIdentitiesOptions {
  readonly logger: Logger;
  /** Source of API keys and their ids (default the system CSPRNG). */
  readonly random?: Random;
  /** Token signing key ids of this replica: announced once the database is reachable (announceSigningKeys). */
  readonly signingKids?: readonly string[];
}

/**
 * Service identities and API keys in PostgreSQL (tables keygate_identities, keygate_api_keys),
 * shared by every replica and changed at run time (admin API, CLI).
 *
 * Tokens are issued from the database (by the SHA-256 hash of the presented key, compared again
 * in constant time). Every request checks its token against an in-memory copy of the live
 * identities and API keys, kept current by the change feed: a change to an identity (roles,
 * certificate identities, a key created or revoked, the identity deleted) reloads that identity
 * on every replica when its notification arrives (milliseconds), and `{kind: 'all'}` (a reconnect,
 * a gap in the feed) reloads everything. Reloads run one at a time, in order. Until the first
 * load has succeeded every token is refused (fail closed); a failed reload keeps the last copy
 * and tries again.
 */
export class PgIdentities implements IdentitySource, IdentityAdmin {
  readonly #db: PgDatabase;
  readonly #log: Logger;
  readonly #random: Random;
  readonly #signingKids: readonly string[] | undefined;
  #live = new Map<string, Live>();
  #loaded = false;
  #chain: Promise<void> = Promise.resolve();
  #retry: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #closed = false;
  readonly #listeners = new Set<(subject: string | undefined) => void>();

  constructor(db: PgDatabase, opts: PgIdentitiesOptions) {
    this.#db = db;
    this.#log = opts.logger;
    this.#random = opts.random ?? systemRandom;
    this.#signingKids = opts.signingKids;
  }

  /** Subscribes to the change feed and loads every identity (in the background when the database is down). */
  start(): Promise<void> {
    this.#unsubscribe ??= this.#db.onChange((c) => this.#heard(c));
    return this.#reload(undefined);
  }

  /** true once the identities were loaded (before that, every token is refused). */
  get loaded(): boolean {
    return this.#loaded;
  }

  /** Waits for the reloads queued so far (tests, and the admin API before it answers). */
  settled(): Promise<void> {
    return this.#chain;
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribe?.();
    clearTimeout(this.#retry);
  }

  // --- IdentitySource -------------------------------------------------------------------

  async findByApiKey(apiKey: string): Promise<ApiKeyMatch | undefined> {
    const hash = hashApiKey(apiKey);
    const r = await this.#db.query<IdentityRow & { id: string; hash: string }>(
      `SELECT k.id, k.hash, i.name, i.cert_identities, i.roles, i.created_at, i.updated_at
         FROM keygate_api_keys k JOIN keygate_identities i ON i.name = k.identity
        WHERE k.hash = $1 AND k.revoked_at IS NULL`,
      [hash],
    );
    const row = r.rows[0];
    if (row === undefined || !constantTimeEqual(Buffer.from(row.hash), Buffer.from(hash))) return undefined;
    return { identity: toIdentity(row), apiKeyId: row.id };
  }

  liveIdentity(subject: string, apiKeyId: string | undefined): ServiceIdentity | undefined {
    if (apiKeyId === undefined) return undefined; // a token that names no key cannot be checked for revocation
    const live = this.#live.get(subject);
    return live?.keyIds.has(apiKeyId) === true ? live.identity : undefined;
  }

  onInvalidate(fn: (subject: string | undefined) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  // --- the in-memory copy ---------------------------------------------------------------

  #heard(change: StoreChange): void {
    if (change.kind === 'identity') void this.#reload(change.name);
    else if (change.kind === 'all') void this.#reload(undefined);
  }

  /** Queues a reload of one identity (or all): never rejects, failures are logged and retried. */
  #reload(name: string | undefined): Promise<void> {
    this.#chain = this.#chain.then(async () => {
      if (this.#closed) return;
      try {
        if (name === undefined || !this.#loaded) await this.#loadAll();
        else await this.#loadOne(name);
      } catch (err) {
        const reason = String((err as Error).message ?? err);
        // Before the first load the database may simply not be open (or migrated) yet.
        if (this.#loaded) this.#log.warn({ reason, identity: name }, 'identities not reloaded; retrying');
        else this.#log.debug({ reason }, 'identities not loaded yet; retrying');
        this.#scheduleRetry();
      }
    });
    return this.#chain;
  }

  #scheduleRetry(): void {
    if (this.#closed || this.#retry !== undefined) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      void this.#reload(undefined);
    }, RETRY_MS);
    this.#retry.unref();
  }

  async #loadAll(): Promise<void> {
    const [ids, keys] = await Promise.all([
      this.#db.query<IdentityRow>('SELECT name, cert_identities, roles FROM keygate_identities'),
      this.#db.query<{ id: string; identity: string }>(
        'SELECT id, identity FROM keygate_api_keys WHERE revoked_at IS NULL',
      ),
    ]);
    const keyIds = new Map<string, Set<string>>();
    for (const k of keys.rows) {
      const set = keyIds.get(k.identity) ?? new Set<string>();
      set.add(k.id);
      keyIds.set(k.identity, set);
    }
    const next = new Map<string, Live>();
    for (const row of ids.rows) {
      next.set(row.name, { identity: toIdentity(row), keyIds: keyIds.get(row.name) ?? new Set() });
    }
    this.#live = next;
    if (!this.#loaded) {
      this.#log.info({ identities: next.size }, 'identities loaded from the database');
      if (this.#signingKids !== undefined) void this.announceSigningKeys(this.#signingKids);
    }
    this.#loaded = true;
    this.#announce(undefined);
  }

  async #loadOne(name: string): Promise<void> {
    const [ids, keys] = await Promise.all([
      this.#db.query<IdentityRow>(
        'SELECT name, cert_identities, roles FROM keygate_identities WHERE name = $1',
        [name],
      ),
      this.#db.query<{ id: string }>(
        'SELECT id FROM keygate_api_keys WHERE identity = $1 AND revoked_at IS NULL',
        [name],
      ),
    ]);
    const row = ids.rows[0];
    if (row === undefined) this.#live.delete(name);
    else this.#live.set(name, { identity: toIdentity(row), keyIds: new Set(keys.rows.map((k) => k.id)) });
    this.#announce(name);
  }

  #announce(subject: string | undefined): void {
    for (const fn of this.#listeners) {
      try {
        fn(subject);
      } catch (err) {
        this.#log.error({ err: String(err) }, 'identity change listener failed');
      }
    }
  }

  // --- IdentityAdmin --------------------------------------------------------------------

  async list(): Promise<readonly IdentityView[]> {
    const [ids, keys] = await Promise.all([
      this.#db.query<IdentityRow>(
        'SELECT name, cert_identities, roles, created_at, updated_at FROM keygate_identities ORDER BY name',
      ),
      this.#db.query<ApiKeyRow>(
        'SELECT id, identity, label, created_at, revoked_at FROM keygate_api_keys ORDER BY created_at, id',
      ),
    ]);
    return ids.rows.map((row) =>
      toView(
        row,
        keys.rows.filter((k) => k.identity === row.name),
      ),
    );
  }

  async get(name: string): Promise<IdentityView> {
    checkName(name, 'IDENTITY_NOT_FOUND');
    const row = (
      await this.#db.query<IdentityRow>(
        'SELECT name, cert_identities, roles, created_at, updated_at FROM keygate_identities WHERE name = $1',
        [name],
      )
    ).rows[0];
    if (row === undefined) throw new KeygateError('IDENTITY_NOT_FOUND', { detail: { identity: name } });
    const keys = await this.#db.query<ApiKeyRow>(
      'SELECT id, identity, label, created_at, revoked_at FROM keygate_api_keys WHERE identity = $1 ORDER BY created_at, id',
      [name],
    );
    return toView(row, keys.rows);
  }

  async create(name: string, fields: IdentityFields): Promise<IdentityView> {
    checkName(name, 'INVALID_FIELD_ERR');
    const f = checkFields(fields);
    const created = await this.#db.tx(async (client) => {
      const r = await client.query<IdentityRow>(
        `INSERT INTO keygate_identities (name, cert_identities, roles) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO NOTHING RETURNING name, cert_identities, roles, created_at, updated_at`,
        [name, f.certIdentities, JSON.stringify(f.roles)],
      );
      const row = r.rows[0];
      if (row === undefined) throw new KeygateError('IDENTITY_EXISTS', { detail: { identity: name } });
      await recordChange(client, { kind: 'identity', name });
      return row;
    });
    await this.#reload(name);
    return toView(created, []);
  }

  async update(name: string, fields: IdentityFields): Promise<IdentityView> {
    checkName(name, 'IDENTITY_NOT_FOUND');
    const f = checkFields(fields);
    await this.#db.tx(async (client) => {
      const r = await client.query(
        `UPDATE keygate_identities SET cert_identities = $2, roles = $3, updated_at = now()
          WHERE name = $1`,
        [name, f.certIdentities, JSON.stringify(f.roles)],
      );
      if (r.rowCount !== 1) throw new KeygateError('IDENTITY_NOT_FOUND', { detail: { identity: name } });
      await recordChange(client, { kind: 'identity', name });
    });
    await this.#reload(name);
    return this.get(name);
  }

  async delete(name: string): Promise<void> {
    checkName(name, 'IDENTITY_NOT_FOUND');
    await this.#db.tx(async (client) => {
      const r = await client.query('DELETE FROM keygate_identities WHERE name = $1', [name]);
      if (r.rowCount !== 1) throw new KeygateError('IDENTITY_NOT_FOUND', { detail: { identity: name } });
      await recordChange(client, { kind: 'identity', name });
    });
    await this.#reload(name);
  }

  async createApiKey(identity: string, label?: string): Promise<CreatedApiKey> {
    checkName(identity, 'IDENTITY_NOT_FOUND');
    if (label !== undefined && !API_KEY_LABEL.safeParse(label).success) {
      throw new KeygateError('INVALID_FIELD_ERR', { detail: { fields: 'label' } });
    }
    const { apiKey, hash } = generateApiKey(this.#random);
    const id = `ak-${this.#random(10).toString('hex')}`;
    const row = await this.#db.tx(async (client) => {
      // Locks the identity row: a concurrent delete waits, so the key never outlives its identity.
      const found = await client.query('SELECT 1 FROM keygate_identities WHERE name = $1 FOR UPDATE', [
        identity,
      ]);
      if (found.rowCount !== 1) throw new KeygateError('IDENTITY_NOT_FOUND', { detail: { identity } });
      const r = await client.query<ApiKeyRow>(
        `INSERT INTO keygate_api_keys (id, hash, identity, label) VALUES ($1, $2, $3, $4)
         RETURNING id, identity, label, created_at, revoked_at`,
        [id, hash, identity, label ?? null],
      );
      await touch(client, identity);
      return r.rows[0] as ApiKeyRow;
    });
    await this.#reload(identity);
    return { apiKey, record: toKeyView(row) };
  }

  async revokeApiKey(id: string): Promise<ApiKeyView> {
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new KeygateError('APIKEY_NOT_FOUND');
    const row = await this.#db.tx(async (client) => {
      const r = await client.query<ApiKeyRow>(
        `UPDATE keygate_api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1
         RETURNING id, identity, label, created_at, revoked_at`,
        [id],
      );
      const found = r.rows[0];
      if (found === undefined) throw new KeygateError('APIKEY_NOT_FOUND', { detail: { apiKeyId: id } });
      await touch(client, found.identity);
      return found;
    });
    await this.#reload(row.identity);
    return toKeyView(row);
  }

  // --- token signing keys ----------------------------------------------------------------

  /**
   * Records the token signing keys this replica verifies with (first_seen, last_seen), and warns
   * about keys other replicas announced within the last day that this one does not have: tokens
   * signed with those would be refused here (AUTH_TOKEN_INVALID), so replicas must share keys.
   * Returns those kids. Never throws (a database problem is logged).
   */
  async announceSigningKeys(kids: readonly string[]): Promise<readonly string[]> {
    return announceSigningKeys(this.#db, this.#log, kids);
  }
}
