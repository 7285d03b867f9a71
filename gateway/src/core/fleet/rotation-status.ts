import type { KeyRecord } from '../keys/key-store.js';
import type { NodeRecord, RotationRecord, UsageCount } from './fleet.js';
import type { ClusterRotation, NodeConvergence, RotationStatus, VersionUse } from './rotation-view.js';

const MINUTE_MS = 60_000;

/** What rotationStatus judges: one rotation, the key's versions now, and the fleet's data. */
export interface RotationStatusInput {
  readonly rotation: RotationRecord;
  /** The key as it is now (its versions, oldest first, give the order of versions). */
  readonly key: Pick<KeyRecord, 'versions'>;
  /** Node reports (any key: those of other keys are left out here). */
  readonly nodes: readonly NodeRecord[];
  /** Usage counts (any key and time: those of other keys or before the rotation are left out). */
  readonly usage: readonly UsageCount[];
  readonly now: Date;
  /** A node not heard from for longer is stale: it neither blocks nor proves convergence. */
  readonly staleAfterMs: number;
  /** Old versions must have been unused for this long before they are safe to disable. */
  readonly quietWindowMs: number;
}

/**
 * The state of a rotation (docs/rotation.md), pure: per cluster, whether every fresh node reports
 * the new version (or a later one), whether the new version was used, and how much older
 * versions were used since the rotation started; and whether the older versions may be disabled:
 * every cluster with nodes on this key converged, and no use of an older version by anyone for
 * the quiet window. Usage comes in minutes: a minute that overlaps the rotation's start counts
 * as after it (a use is never missed), and the quiet window starts at the end of the last minute
 * an older version was used in.
 */
export function rotationStatus(input: RotationStatusInput): RotationStatus {
  const { rotation, key, now } = input;
  const rank = new Map(key.versions.map((v, i) => [v.id, i]));
  const toRank = rank.get(rotation.toVersion) ?? Number.POSITIVE_INFINITY;
  const isNew = (version: string | undefined) =>
    version !== undefined && (rank.get(version) ?? Number.NEGATIVE_INFINITY) >= toRank;
  const isOld = (version: string) => (rank.get(version) ?? Number.POSITIVE_INFINITY) < toRank;
  const startedMs = Date.parse(rotation.startedAt);
  const nowMs = now.getTime();

  const nodes = input.nodes.filter((n) => n.instance === rotation.instance && n.crk === rotation.crk);
  const usage = input.usage.filter(
    (u) =>
      u.instance === rotation.instance &&
      u.crk === rotation.crk &&
      u.count > 0 &&
      Date.parse(u.minute) + MINUTE_MS > startedMs,
  );
  const names = [...new Set([...nodes.map((n) => n.cluster), ...usage.map((u) => u.cluster)])].sort();

  const reasons: string[] = [];
  const clusters = names.map((cluster): ClusterRotation => {
    const mine = nodes
      .filter((n) => n.cluster === cluster)
      .map(
        (n): NodeConvergence => ({
          cluster,
          node: n.node,
          kmsKeyId: n.kmsKeyId,
          keyVersion: n.keyVersion,
          converged: isNew(n.keyVersion),
          stale: nowMs - Date.parse(n.lastSeen) > input.staleAfterMs,
          lastSeen: n.lastSeen,
        }),
      )
      .sort((a, b) => a.node.localeCompare(b.node));
    const fresh = mine.filter((n) => !n.stale);
    const used = usage.filter((u) => u.cluster === cluster);
    const row: ClusterRotation = {
      cluster,
      nodes: mine,
      converged: fresh.length > 0 && fresh.every((n) => n.converged),
      newVersionSeen: used.some((u) => u.op !== 'rewrap' && isNew(u.version)),
      oldVersionUse: versionUses(
        used.filter((u) => isOld(u.version)),
        (v) => rank.get(v) ?? 0,
      ),
    };
    if (mine.length > 0) reasons.push(...convergenceReasons(row, input.staleAfterMs));
    reasons.push(...useReasons(row, nowMs - input.quietWindowMs));
    return row;
  });

  const lastOldUseEnd = Math.max(
    ...usage.filter((u) => isOld(u.version)).map((u) => Date.parse(u.minute) + MINUTE_MS),
    startedMs,
  );
  const quietMs = nowMs - lastOldUseEnd;
  if (!rank.has(rotation.toVersion)) {
    reasons.unshift(`version ${rotation.toVersion} is not a version of this key any more`);
  }
  if (quietMs < input.quietWindowMs) {
    reasons.push(
      `quiet for ${duration(Math.max(0, quietMs))} of the ${duration(input.quietWindowMs)} window`,
    );
  }
  return {
    rotation,
    currentVersion: key.versions[key.versions.length - 1]?.id ?? rotation.toVersion,
    clusters,
    safeToDisable: reasons.length === 0,
    reasons,
    quietSince: new Date(lastOldUseEnd).toISOString(),
  };
}

/** Uses summed per version (older versions first); versions without uses are left out. */
function versionUses(used: readonly UsageCount[], rankOf: (version: string) => number): VersionUse[] {
  const by = new Map<string, { wraps: number; unwraps: number; rewraps: number; lastUsed: string }>();
  for (const u of used) {
    const v = by.get(u.version) ?? { wraps: 0, unwraps: 0, rewraps: 0, lastUsed: u.minute };
    if (u.op === 'wrap') v.wraps += u.count;
    else if (u.op === 'unwrap') v.unwraps += u.count;
    else v.rewraps += u.count;
    if (u.minute > v.lastUsed) v.lastUsed = u.minute;
    by.set(u.version, v);
  }
  return [...by.entries()]
    .sort(([a], [b]) => rankOf(a) - rankOf(b))
    .map(([version, v]) => ({ version, ...v }));
}

function convergenceReasons(row: ClusterRotation, staleAfterMs: number): string[] {
  const fresh = row.nodes.filter((n) => !n.stale);
  if (fresh.length === 0) {
    const names = row.nodes.map((n) => n.node).join(', ');
    return [
      `cluster ${row.cluster}: no node reported in the last ${duration(staleAfterMs)} (stale: ${names})`,
    ];
  }
  return fresh
    .filter((n) => !n.converged)
    .map((n) =>
      n.keyVersion === undefined
        ? `cluster ${row.cluster}: node ${n.node} reports no key version yet`
        : `cluster ${row.cluster}: node ${n.node} still reports version ${n.keyVersion}`,
    );
}

/** One sentence per older version the cluster used within the quiet window. */
function useReasons(row: ClusterRotation, windowStartMs: number): string[] {
  return row.oldVersionUse
    .filter((v) => v.lastUsed !== undefined && Date.parse(v.lastUsed) + MINUTE_MS > windowStartMs)
    .map((v) => {
      const what = [
        v.unwraps > 0 ? `unwrapped ${times(v.unwraps)}` : '',
        v.rewraps > 0 ? `rewrapped ${times(v.rewraps)}` : '',
        v.wraps > 0 ? `wrapped ${times(v.wraps)}` : '',
      ]
        .filter((s) => s !== '')
        .join(', ');
      const advice =
        v.wraps > 0 && v.unwraps + v.rewraps === 0
          ? 'its shims still wrap with it'
          : 're-encrypt its Secrets';
      return `version ${v.version} ${what} since the rotation by cluster ${row.cluster} (last in the minute of ${v.lastUsed}): ${advice}`;
    });
}

function times(n: number): string {
  return n === 1 ? 'once' : `${n} times`;
}

/** A short duration: 45s, 4m, 1h, 1h30m, 2d3h. */
export function duration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 24) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  const d = Math.floor(h / 24);
  return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
}
