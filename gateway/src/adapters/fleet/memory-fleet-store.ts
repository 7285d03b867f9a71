import type {
  FleetStore,
  KeyUse,
  NodeRecord,
  RotationRecord,
  UsageCount,
  UsageQuery,
} from '../../core/fleet/fleet.js';

/** Usage minutes kept in memory by default: one week. */
const DEFAULT_RETENTION_MS = 7 * 24 * 60 * 60_000;

export interface MemoryFleetOptions {
  /** Usage minutes older than this are dropped when new ones are noted (ms). */
  readonly usageRetentionMs?: number;
  readonly now?: () => Date;
}

/** What a MemoryFleetStore holds, for persistence by an adapter that saves it (fleet-file-store.ts). */
export interface FleetSnapshot {
  readonly nodes: readonly NodeRecord[];
  readonly usage: readonly UsageCount[];
  readonly rotations: readonly RotationRecord[];
}

/**
 * The fleet in memory: the latest report per node, usage counted per minute, rotations. It is the
 * whole store for tests and a single gateway without persistence, and the working set of the file
 * adapter. noteNode and noteUse are synchronous and cannot throw.
 */
export class MemoryFleetStore implements FleetStore {
  private readonly nodeMap = new Map<string, NodeRecord>();
  private readonly usageMap = new Map<string, UsageCount>();
  private rotationList: RotationRecord[] = [];
  private readonly retentionMs: number;
  private readonly now: () => Date;
  private oldestMinute = Number.POSITIVE_INFINITY;

  constructor(options: MemoryFleetOptions = {}, snapshot?: FleetSnapshot) {
    this.retentionMs = options.usageRetentionMs ?? DEFAULT_RETENTION_MS;
    this.now = options.now ?? (() => new Date());
    if (snapshot !== undefined) this.restore(snapshot);
  }

  noteNode(record: NodeRecord): void {
    this.nodeMap.set(nodeKey(record), record);
  }

  noteUse(use: KeyUse): void {
    const minuteMs = Math.floor(use.at.getTime() / 60_000) * 60_000;
    const minute = new Date(minuteMs).toISOString();
    const key = `${use.cluster}\u0000${use.instance}\u0000${use.crk}\u0000${use.version}\u0000${use.op}\u0000${minute}`;
    const before = this.usageMap.get(key);
    this.usageMap.set(key, {
      cluster: use.cluster,
      instance: use.instance,
      crk: use.crk,
      version: use.version,
      op: use.op,
      minute,
      count: (before?.count ?? 0) + 1,
    });
    if (minuteMs < this.oldestMinute) this.oldestMinute = minuteMs;
    this.prune();
  }

  nodes(): Promise<readonly NodeRecord[]> {
    return Promise.resolve([...this.nodeMap.values()].sort((a, b) => a.lastSeen.localeCompare(b.lastSeen)));
  }

  usage(query: UsageQuery): Promise<readonly UsageCount[]> {
    const since = query.since.getTime();
    const out = [...this.usageMap.values()].filter(
      (u) =>
        Date.parse(u.minute) >= since &&
        (query.instance === undefined || u.instance === query.instance) &&
        (query.crk === undefined || u.crk === query.crk) &&
        (query.cluster === undefined || u.cluster === query.cluster),
    );
    return Promise.resolve(out.sort((a, b) => a.minute.localeCompare(b.minute)));
  }

  startRotation(record: RotationRecord): Promise<void> {
    this.rotationList.push(record);
    return Promise.resolve();
  }

  rotations(instance: string, crk: string): Promise<readonly RotationRecord[]> {
    const mine = this.rotationList.filter((r) => r.instance === instance && r.crk === crk);
    return Promise.resolve(mine.sort((a, b) => b.startedAt.localeCompare(a.startedAt)));
  }

  forgetCluster(cluster: string): Promise<void> {
    for (const [key, record] of this.nodeMap) if (record.cluster === cluster) this.nodeMap.delete(key);
    return Promise.resolve();
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Everything held, for an adapter that persists it. */
  snapshot(): FleetSnapshot {
    return {
      nodes: [...this.nodeMap.values()],
      usage: [...this.usageMap.values()],
      rotations: [...this.rotationList],
    };
  }

  /** Replaces what is held with a saved snapshot (kept newer node reports win). */
  restore(snapshot: FleetSnapshot): void {
    for (const n of snapshot.nodes) {
      const held = this.nodeMap.get(nodeKey(n));
      if (held === undefined || held.lastSeen < n.lastSeen) this.nodeMap.set(nodeKey(n), n);
    }
    for (const u of snapshot.usage) {
      const key = `${u.cluster}\u0000${u.instance}\u0000${u.crk}\u0000${u.version}\u0000${u.op}\u0000${u.minute}`;
      if (!this.usageMap.has(key)) this.usageMap.set(key, u);
      this.oldestMinute = Math.min(this.oldestMinute, Date.parse(u.minute));
    }
    const seen = new Set(this.rotationList.map(rotationKey));
    for (const r of snapshot.rotations) if (!seen.has(rotationKey(r))) this.rotationList.push(r);
    this.prune();
  }

  private prune(): void {
    const cutoff = this.now().getTime() - this.retentionMs;
    if (this.oldestMinute >= cutoff) return;
    let oldest = Number.POSITIVE_INFINITY;
    for (const [key, u] of this.usageMap) {
      const at = Date.parse(u.minute);
      if (at < cutoff) this.usageMap.delete(key);
      else if (at < oldest) oldest = at;
    }
    this.oldestMinute = oldest;
  }
}

function nodeKey(r: NodeRecord): string {
  return `${r.cluster}\u0000${r.node}\u0000${r.instance}\u0000${r.crk}`;
}

function rotationKey(r: RotationRecord): string {
  return `${r.instance}\u0000${r.crk}\u0000${r.startedAt}\u0000${r.toVersion}`;
}
