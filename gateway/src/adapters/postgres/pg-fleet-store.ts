import type {
  FleetStore,
  KeyUse,
  NodeRecord,
  RotationRecord,
  UsageCount,
  UsageOp,
  UsageQuery,
} from '../../core/fleet/fleet.js';
import type { PgDatabase } from './pg-database.js';

export interface PgFleetOptions {
  /** Use counts older than this are deleted (at most once per `pruneEveryMs`, at a flush). */
  readonly usageRetentionMs: number;
  readonly pruneEveryMs?: number;
  readonly now?: () => Date;
  /** Read only (the `fleet` CLI): flush and close write nothing, not even the retention delete. */
  readonly readOnly?: boolean;
  /** Buffered use counts at most (a long outage); past it new ones are dropped and counted. */
  readonly maxBuffered?: number;
}

interface NodeRow {
  cluster: string;
  node: string;
  instance: string;
  crk: string;
  shim_version: string;
  kms_key_id: string | null;
  key_version: string | null;
  apis: string;
  cache_size: number;
  health: string;
  last_seen: Date;
  replica: string;
}

interface UsageRow {
  cluster: string;
  instance: string;
  crk: string;
  version: string;
  op: UsageOp;
  minute: Date;
  count: string;
}

interface RotationRow {
  instance: string;
  crk: string;
  from_version: string;
  to_version: string;
  started_at: Date;
  started_by: string;
}

interface Counted {
  readonly cluster: string;
  readonly instance: string;
  readonly crk: string;
  readonly version: string;
  readonly op: UsageOp;
  readonly minute: string;
  count: number;
}

const HOUR_MS = 3_600_000;
const MAX_BUFFERED = 100_000;

// One statement per table and flush, whatever the buffer holds: rows go in as parallel arrays.
const UPSERT_NODES = `
  INSERT INTO keygate_fleet_nodes AS n (cluster, node, instance, crk, shim_version, kms_key_id,
    key_version, apis, cache_size, health, last_seen, replica)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::integer[], $10::text[], $11::timestamptz[], $12::text[])
  ON CONFLICT (cluster, node, instance, crk) DO UPDATE SET
    shim_version = EXCLUDED.shim_version, kms_key_id = EXCLUDED.kms_key_id,
    key_version = EXCLUDED.key_version, apis = EXCLUDED.apis, cache_size = EXCLUDED.cache_size,
    health = EXCLUDED.health, last_seen = EXCLUDED.last_seen, replica = EXCLUDED.replica
  WHERE n.last_seen <= EXCLUDED.last_seen`;

const UPSERT_USAGE = `
  INSERT INTO keygate_fleet_usage AS u (cluster, instance, crk, version, op, minute, count)
  SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
    $6::timestamptz[], $7::bigint[])
  ON CONFLICT (cluster, instance, crk, version, op, minute) DO UPDATE SET count = u.count + EXCLUDED.count`;

/**
 * The fleet in PostgreSQL, shared by every replica (migration 6). noteNode and noteUse only fill
 * this replica's buffer (the latest report per node; counts per minute); flush writes it in one
 * transaction (newest report wins, counts add up) and puts it back if the write fails, so an
 * outage loses nothing this replica still holds. Reads flush first, then query the database.
 */
export class PgFleetStore implements FleetStore {
  readonly #db: PgDatabase;
  readonly #o: PgFleetOptions;
  readonly #now: () => Date;
  #nodes = new Map<string, NodeRecord>();
  #uses = new Map<string, Counted>();
  #flushing: Promise<void> = Promise.resolve();
  #lastPrune = 0;
  #closed = false;
  #dropped = 0;
  /** The last minute noted, and its ISO text (one toISOString per minute, not per use). */
  #minuteMs = -1;
  #minute = '';

  constructor(db: PgDatabase, options: PgFleetOptions) {
    this.#db = db;
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
  }

  noteNode(record: NodeRecord): void {
    if (this.#closed) return;
    const key = `${record.cluster}\u0000${record.node}\u0000${record.instance}\u0000${record.crk}`;
    const held = this.#nodes.get(key);
    if (held === undefined || held.lastSeen <= record.lastSeen) this.#nodes.set(key, record);
  }

  noteUse(use: KeyUse): void {
    if (this.#closed) return;
    const minuteMs = Math.floor(use.at.getTime() / 60_000) * 60_000;
    if (minuteMs !== this.#minuteMs) {
      this.#minuteMs = minuteMs;
      this.#minute = new Date(minuteMs).toISOString();
    }
    this.#count(use.cluster, use.instance, use.crk, use.version, use.op, this.#minute, 1);
  }

  async nodes(): Promise<readonly NodeRecord[]> {
    await this.flush();
    const r = await this.#db.query<NodeRow>(
      'SELECT * FROM keygate_fleet_nodes ORDER BY last_seen, cluster, node',
    );
    return r.rows.map(nodeOf);
  }

  async usage(query: UsageQuery): Promise<readonly UsageCount[]> {
    await this.flush();
    const r = await this.#db.query<UsageRow>(
      `SELECT cluster, instance, crk, version, op, minute, count::text AS count FROM keygate_fleet_usage
        WHERE minute >= $1 AND ($2::text IS NULL OR instance = $2) AND ($3::text IS NULL OR crk = $3)
          AND ($4::text IS NULL OR cluster = $4)
        ORDER BY minute, cluster, instance, crk, version, op`,
      [query.since, query.instance ?? null, query.crk ?? null, query.cluster ?? null],
    );
    return r.rows.map((u) => ({
      cluster: u.cluster,
      instance: u.instance,
      crk: u.crk,
      version: u.version,
      op: u.op,
      minute: u.minute.toISOString(),
      count: Number(u.count),
    }));
  }

  async startRotation(record: RotationRecord): Promise<void> {
    await this.#db.query(
      `INSERT INTO keygate_fleet_rotations (instance, crk, from_version, to_version, started_at, started_by)
        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
      [record.instance, record.crk, record.fromVersion, record.toVersion, record.startedAt, record.startedBy],
    );
  }

  async rotations(instance: string, crk: string): Promise<readonly RotationRecord[]> {
    const r = await this.#db.query<RotationRow>(
      `SELECT * FROM keygate_fleet_rotations WHERE instance = $1 AND crk = $2
        ORDER BY started_at DESC, to_version DESC`,
      [instance, crk],
    );
    return r.rows.map((x) => ({
      instance: x.instance,
      crk: x.crk,
      fromVersion: x.from_version,
      toVersion: x.to_version,
      startedAt: x.started_at.toISOString(),
      startedBy: x.started_by,
    }));
  }

  async forgetCluster(cluster: string): Promise<void> {
    for (const [key, n] of this.#nodes) if (n.cluster === cluster) this.#nodes.delete(key);
    await this.#db.query('DELETE FROM keygate_fleet_nodes WHERE cluster = $1', [cluster]);
  }

  /** Writes what is buffered (one flush at a time; a failed one leaves the buffer for the next). */
  flush(): Promise<void> {
    const next = this.#flushing.then(() => this.#write());
    this.#flushing = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.flush();
    } finally {
      this.#closed = true;
    }
  }

  /** Buffered entries (for tests and the log line at close). */
  get buffered(): number {
    return this.#nodes.size + this.#uses.size;
  }

  /** Uses not counted because the buffer was full (the database was down for long). */
  get dropped(): number {
    return this.#dropped;
  }

  #count(
    cluster: string,
    instance: string,
    crk: string,
    version: string,
    op: UsageOp,
    minute: string,
    n: number,
  ): void {
    const key = `${cluster}\u0000${instance}\u0000${crk}\u0000${version}\u0000${op}\u0000${minute}`;
    const held = this.#uses.get(key);
    if (held !== undefined) held.count += n;
    else if (this.#uses.size >= (this.#o.maxBuffered ?? MAX_BUFFERED)) this.#dropped += n;
    else this.#uses.set(key, { cluster, instance, crk, version, op, minute, count: n });
  }

  async #write(): Promise<void> {
    if (this.#o.readOnly === true) return;
    const prune = this.#now().getTime() - this.#lastPrune >= (this.#o.pruneEveryMs ?? HOUR_MS);
    if (this.#nodes.size === 0 && this.#uses.size === 0 && !prune) return;
    const nodes = [...this.#nodes.values()];
    const uses = [...this.#uses.values()];
    this.#nodes = new Map();
    this.#uses = new Map();
    try {
      await this.#db.tx(async (client) => {
        if (nodes.length > 0) await client.query(UPSERT_NODES, nodeColumns(nodes));
        if (uses.length > 0) await client.query(UPSERT_USAGE, usageColumns(uses));
      });
    } catch (err) {
      // Back into the buffer, under whatever arrived meanwhile (newer reports win, counts add).
      for (const n of nodes) this.noteNode(n);
      for (const u of uses) this.#count(u.cluster, u.instance, u.crk, u.version, u.op, u.minute, u.count);
      throw err;
    }
    if (prune) {
      const cutoff = new Date(this.#now().getTime() - this.#o.usageRetentionMs);
      await this.#db.query('DELETE FROM keygate_fleet_usage WHERE minute < $1', [cutoff]);
      this.#lastPrune = this.#now().getTime();
    }
  }
}

function nodeColumns(nodes: readonly NodeRecord[]): unknown[] {
  return [
    nodes.map((n) => n.cluster),
    nodes.map((n) => n.node),
    nodes.map((n) => n.instance),
    nodes.map((n) => n.crk),
    nodes.map((n) => n.shimVersion),
    nodes.map((n) => n.kmsKeyId ?? null),
    nodes.map((n) => n.keyVersion ?? null),
    nodes.map((n) => n.apis.join(',')),
    nodes.map((n) => n.cacheSize),
    nodes.map((n) => n.health),
    nodes.map((n) => n.lastSeen),
    nodes.map((n) => n.replica),
  ];
}

function usageColumns(uses: readonly Counted[]): unknown[] {
  return [
    uses.map((u) => u.cluster),
    uses.map((u) => u.instance),
    uses.map((u) => u.crk),
    uses.map((u) => u.version),
    uses.map((u) => u.op),
    uses.map((u) => u.minute),
    uses.map((u) => String(u.count)),
  ];
}

function nodeOf(r: NodeRow): NodeRecord {
  return {
    cluster: r.cluster,
    node: r.node,
    instance: r.instance,
    crk: r.crk,
    shimVersion: r.shim_version,
    kmsKeyId: r.kms_key_id ?? undefined,
    keyVersion: r.key_version ?? undefined,
    apis: r.apis === '' ? [] : r.apis.split(','),
    cacheSize: r.cache_size,
    health: r.health,
    lastSeen: r.last_seen.toISOString(),
    replica: r.replica,
  };
}
