import { type NodeRecord, USAGE_OPS, type UsageCount, type UsageOp } from './fleet.js';

/** A node as the fleet view shows it: its latest report, and whether that is too old. */
export interface FleetNodeView extends NodeRecord {
  /** True when the last report is older than the staleness limit (the shim may be gone). */
  readonly stale: boolean;
}

/** Operations per root-key version, over the usage window. */
export type OpCounts = Record<UsageOp, number>;

export interface VersionUse extends OpCounts {
  readonly instance: string;
  readonly crk: string;
  readonly version: string;
}

export interface ClusterUse extends OpCounts {
  readonly versions: VersionUse[];
}

/** What `GET /api/v2/keygate/fleet` answers and `keygate-gateway fleet --json` prints. */
export interface FleetView {
  /** ISO 8601: when the view was made. */
  readonly at: string;
  readonly staleAfterMs: number;
  /** Every node, by cluster then node name. */
  readonly nodes: readonly FleetNodeView[];
  readonly usage: {
    /** ISO 8601 start of the window counted (the last hour). */
    readonly since: string;
    readonly clusters: Readonly<Record<string, ClusterUse>>;
  };
}

/** The usage window of the fleet view. */
export const FLEET_USAGE_WINDOW_MS = 3_600_000;

const zero = (): OpCounts => ({ wrap: 0, unwrap: 0, rewrap: 0 });

/** True when a report seen at `lastSeen` is older than `staleAfterMs` at `now`. */
export function isStale(lastSeen: string, now: Date, staleAfterMs: number): boolean {
  return now.getTime() - Date.parse(lastSeen) > staleAfterMs;
}

/** Builds the fleet view from the store's nodes and the usage counted since `since`. */
export function fleetView(
  nodes: readonly NodeRecord[],
  usage: readonly UsageCount[],
  now: Date,
  staleAfterMs: number,
  since: Date,
): FleetView {
  const shown = nodes
    .map((n) => ({ ...n, stale: isStale(n.lastSeen, now, staleAfterMs) }))
    .sort((a, b) => a.cluster.localeCompare(b.cluster) || a.node.localeCompare(b.node));
  const clusters: Record<string, ClusterUse> = {};
  for (const u of usage) {
    if (!USAGE_OPS.includes(u.op)) continue;
    let c = clusters[u.cluster];
    if (c === undefined) {
      c = { ...zero(), versions: [] };
      clusters[u.cluster] = c;
    }
    c[u.op] += u.count;
    let v = c.versions.find((x) => x.instance === u.instance && x.crk === u.crk && x.version === u.version);
    if (v === undefined) {
      v = { instance: u.instance, crk: u.crk, version: u.version, ...zero() };
      c.versions.push(v);
    }
    v[u.op] += u.count;
  }
  return {
    at: now.toISOString(),
    staleAfterMs,
    nodes: shown,
    usage: { since: since.toISOString(), clusters },
  };
}

/** Fresh and stale node counts (the keygate_fleet_nodes gauge). */
export function nodeStates(
  nodes: readonly NodeRecord[],
  now: Date,
  staleAfterMs: number,
): { fresh: number; stale: number } {
  let stale = 0;
  for (const n of nodes) if (isStale(n.lastSeen, now, staleAfterMs)) stale++;
  return { fresh: nodes.length - stale, stale };
}
