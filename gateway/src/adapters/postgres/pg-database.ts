import { KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import pg from 'pg';
import type { StoreChange } from '../../core/store-changes.js';
import { describeError, isConnectionError, isRetryable } from './pg-errors.js';
import { migrateSchema } from './pg-migrate.js';

/** The channel every change is announced on (a trigger on keygate_changes sends it). */
export const CHANGE_CHANNEL = 'keygate_changes';
/** While the database is unusable, status() tries it at most this often. */
const RECHECK_MS = 1000;

export type PgClient = pg.PoolClient;

export interface PgDatabaseOptions {
  readonly pool: pg.PoolConfig & { readonly statementTimeoutMs?: number };
  /** Where the database is, for readiness text and logs (host:port/database). */
  readonly describe: string;
  readonly logger: Logger;
  /** How often every replica re-reads the change table (the safety net under NOTIFY). */
  readonly reconcileMs?: number;
  /** Apply pending migrations at open (default); otherwise refuse to run on an older schema. */
  readonly migrate?: boolean;
}

/**
 * The PostgreSQL connection of a gateway replica: a pool for requests, versioned migrations under
 * an advisory lock, transactions, and the change feed (LISTEN/NOTIFY on `keygate_changes`, with a
 * periodic re-read of the change table as the safety net). Survives connection loss and database
 * restarts: status() reports the problem, requests answer STORE_UNAVAILABLE, and the next query
 * after the database is back succeeds.
 */
export class PgDatabase {
  readonly pool: pg.Pool;
  readonly #opts: PgDatabaseOptions;
  readonly #log: Logger;
  readonly #subscribers = new Set<(change: StoreChange) => void>();
  #lastError: string | undefined = 'not opened yet';
  #checkedAt = 0;
  #recheck: Promise<unknown> | undefined;
  #migrated = false;
  #listener: pg.Client | undefined;
  #listening = false;
  #listenTimer: NodeJS.Timeout | undefined;
  #reconcileTimer: NodeJS.Timeout | undefined;
  #lastSeq = 0n;
  #closed = false;
  #listenBackoffMs = 100;
  #opening: Promise<void> | undefined;

  constructor(opts: PgDatabaseOptions) {
    this.#opts = opts;
    this.#log = opts.logger;
    const { statementTimeoutMs, ...pool } = opts.pool;
    this.pool = new pg.Pool({
      ...pool,
      ...(statementTimeoutMs === undefined ? {} : { statement_timeout: statementTimeoutMs }),
    });
    // An idle client whose server went away emits 'error' on the pool; unhandled, it would kill the process.
    this.pool.on('error', (err) => this.#failed(err));
  }

  /**
   * Connects, applies pending migrations (one replica at a time) and starts the change feed.
   * Never throws for an unreachable database: status() says why, and open is retried in the
   * background until it succeeds.
   */
  async open(): Promise<void> {
    this.#opening ??= this.#tryOpen().finally(() => {
      this.#opening = undefined;
    });
    await this.#opening;
  }

  async #tryOpen(): Promise<void> {
    try {
      if (!this.#migrated) {
        await migrateSchema(this.pool, this.#log, this.#opts.migrate ?? true);
        this.#migrated = true;
      }
      const head = await this.pool.query<{ seq: string | null }>(
        'SELECT max(seq)::text AS seq FROM keygate_changes',
      );
      this.#lastSeq = BigInt(head.rows[0]?.seq ?? '0');
      this.#ok();
      this.#startListening();
      this.#startReconcile();
    } catch (err) {
      this.#failed(err);
      if (!this.#closed && (this.#opts.migrate ?? true) === false && !isConnectionError(err)) throw err;
    }
  }

  /**
   * true while the change feed is connected and listening: what a replica caches is then dropped
   * as soon as any replica changes it. While false, callers must not trust their caches.
   */
  get listening(): boolean {
    return this.#listening;
  }

  /** true once the schema is current and the last contact with the database worked. */
  status(): { ready: boolean; reasons: readonly string[] } {
    if (this.#lastError === undefined && this.#migrated) return { ready: true, reasons: [] };
    if (!this.#closed && this.#recheck === undefined && Date.now() - this.#checkedAt >= RECHECK_MS) {
      this.#checkedAt = Date.now();
      this.#recheck = (this.#migrated ? this.ping() : this.open())
        .catch(() => undefined)
        .finally(() => {
          this.#recheck = undefined;
        });
    }
    return {
      ready: false,
      reasons: [`database ${this.#opts.describe}: ${this.#lastError ?? 'schema not ready'}`],
    };
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  /** One statement outside a transaction. Connection problems are STORE_UNAVAILABLE. */
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    sql: string,
    params: readonly unknown[] = [],
  ): Promise<pg.QueryResult<R>> {
    try {
      const r = await this.pool.query<R>(sql, params as unknown[]);
      this.#ok();
      return r;
    } catch (err) {
      throw this.#translate(err);
    }
  }

  /**
   * Runs `work` in one transaction (READ COMMITTED unless `isolation` says otherwise) and commits.
   * Serialization failures and deadlocks are retried (3 times); a KeygateError thrown by `work`
   * rolls back and propagates; connection problems are STORE_UNAVAILABLE.
   */
  async tx<T>(
    work: (client: PgClient) => Promise<T>,
    options: { readonly isolation?: 'read committed' | 'repeatable read' | 'serializable' } = {},
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      let client: PgClient;
      try {
        client = await this.pool.connect();
      } catch (err) {
        throw this.#translate(err);
      }
      let broken: unknown;
      // A checked-out client has no 'error' listener (pg-pool removes its idle one): a connection
      // that ends mid-transaction would emit an unhandled 'error' and kill the process. The
      // query in flight rejects anyway; note the client as broken so it leaves the pool.
      const onError = (err: Error) => {
        broken ??= err;
      };
      client.on('error', onError);
      try {
        await client.query(`BEGIN ISOLATION LEVEL ${(options.isolation ?? 'read committed').toUpperCase()}`);
        const out = await work(client);
        await client.query('COMMIT');
        this.#ok();
        return out;
      } catch (err) {
        await client.query('ROLLBACK').catch((e: unknown) => {
          broken = e;
        });
        if (isRetryable(err) && attempt < 3) continue;
        if (err instanceof KeygateError) throw err;
        if (isConnectionError(err)) broken ??= err;
        throw this.#translate(err);
      } finally {
        client.removeListener('error', onError);
        // A client whose connection failed must not go back to the pool.
        client.release(broken instanceof Error ? broken : undefined);
      }
    }
  }

  /** Calls `fn` for every change made by any replica (and `{kind: 'all'}` when some may be missed). */
  onChange(fn: (change: StoreChange) => void): () => void {
    this.#subscribers.add(fn);
    return () => this.#subscribers.delete(fn);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listening = false;
    clearTimeout(this.#listenTimer);
    clearInterval(this.#reconcileTimer);
    const l = this.#listener;
    this.#listener = undefined;
    await l?.end().catch(() => undefined);
    await this.#opening?.catch(() => undefined);
    await this.pool.end().catch(() => undefined);
  }

  /** Applied schema versions (for `db migrate` and tests). */
  async schemaVersions(): Promise<readonly number[]> {
    const r = await this.query<{ version: number }>('SELECT version FROM keygate_schema ORDER BY version');
    return r.rows.map((x) => x.version);
  }

  // --- change feed ------------------------------------------------------------------------

  #emit(change: StoreChange): void {
    for (const fn of this.#subscribers) {
      try {
        fn(change);
      } catch (err) {
        this.#log.error({ err: String(err) }, 'change subscriber failed');
      }
    }
  }

  #seen(seq: bigint, change: StoreChange): void {
    if (seq > this.#lastSeq) this.#lastSeq = seq;
    this.#emit(change);
  }

  #startListening(): void {
    if (this.#closed || this.#listener !== undefined || this.#listenTimer !== undefined) return;
    const { statementTimeoutMs: _, max: __, ...cfg } = this.#opts.pool;
    const client = new pg.Client({ ...cfg, application_name: 'keygate-gateway-listen' });
    this.#listener = client;
    const lost = (err?: unknown) => {
      if (this.#listener !== client) return;
      this.#listener = undefined;
      this.#listening = false;
      client.end().catch(() => undefined);
      if (this.#closed) return;
      if (err !== undefined) this.#failed(err);
      this.#listenTimer = setTimeout(() => {
        this.#listenTimer = undefined;
        this.#startListening();
      }, this.#listenBackoffMs);
      this.#listenTimer.unref();
      this.#listenBackoffMs = Math.min(5000, this.#listenBackoffMs * 2);
    };
    client.on('error', lost);
    client.on('end', () => lost(new Error('Connection ended')));
    client.on('notification', (msg) => {
      if (msg.channel !== CHANGE_CHANNEL || msg.payload === undefined) return;
      try {
        const n = JSON.parse(msg.payload) as { seq: string | number; kind: string; subject: unknown };
        this.#seen(BigInt(n.seq), toChange(n.kind, n.subject));
      } catch {
        this.#emit({ kind: 'all' });
      }
    });
    client
      .connect()
      .then(() => client.query(`LISTEN ${CHANGE_CHANNEL}`))
      .then(() => {
        if (this.#listener !== client) return;
        this.#listening = true;
        this.#listenBackoffMs = 100;
        // Changes made while nobody listened were not heard: everything cached may be old.
        this.#emit({ kind: 'all' });
      })
      .catch(lost);
  }

  #startReconcile(): void {
    if (this.#reconcileTimer !== undefined) return;
    this.#reconcileTimer = setInterval(() => {
      this.reconcile().catch(() => undefined);
    }, this.#opts.reconcileMs ?? 5000);
    this.#reconcileTimer.unref();
  }

  /** Reads changes newer than the last one heard and announces them (the safety net under NOTIFY). */
  async reconcile(): Promise<void> {
    const r = await this.query<{ seq: string; kind: string; subject: unknown }>(
      'SELECT seq::text AS seq, kind, subject FROM keygate_changes WHERE seq > $1 ORDER BY seq LIMIT 1001',
      [this.#lastSeq.toString()],
    );
    if (r.rows.length > 1000) {
      const last = r.rows[r.rows.length - 1];
      if (last !== undefined) this.#lastSeq = BigInt(last.seq);
      this.#emit({ kind: 'all' });
      return;
    }
    for (const row of r.rows) this.#seen(BigInt(row.seq), toChange(row.kind, row.subject));
  }

  // --- health ---------------------------------------------------------------------------

  #ok(): void {
    if (this.#lastError !== undefined && this.#migrated) {
      this.#log.info({ database: this.#opts.describe }, 'database reachable again');
    }
    if (this.#migrated) this.#lastError = undefined;
  }

  #failed(err: unknown): void {
    const text = describeError(err);
    if (this.#lastError !== text)
      this.#log.warn({ database: this.#opts.describe, reason: text }, 'database problem');
    this.#lastError = text;
    this.#checkedAt = Date.now();
  }

  #translate(err: unknown): unknown {
    if (err instanceof KeygateError) return err;
    if (isConnectionError(err)) {
      this.#failed(err);
      return new KeygateError('STORE_UNAVAILABLE', { cause: err, detail: { database: this.#opts.describe } });
    }
    return err;
  }
}

/** A change row (kind + subject JSON) as the port's StoreChange; unknown kinds mean "re-read all". */
function toChange(kind: string, subject: unknown): StoreChange {
  const s = (subject ?? {}) as Record<string, unknown>;
  if (kind === 'key' && typeof s.instance === 'string' && typeof s.id === 'string') {
    return { kind: 'key', instance: s.instance, id: s.id };
  }
  if (kind === 'identity' && typeof s.name === 'string') return { kind: 'identity', name: s.name };
  return { kind: 'all' };
}

/** Records a change in the current transaction; every replica hears it when the transaction commits. */
export async function recordChange(
  client: PgClient,
  change: Exclude<StoreChange, { kind: 'all' }>,
): Promise<void> {
  const { kind, ...subject } = change;
  await client.query('INSERT INTO keygate_changes (kind, subject) VALUES ($1, $2)', [
    kind,
    JSON.stringify(subject),
  ]);
}
