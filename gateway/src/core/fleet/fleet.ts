/**
 * The fleet: what the gateway knows of the shims that call it (docs/fleet.md). Every shim reports
 * itself on its periodic key_id refresh (ShimReport, @keygate/shared/api); the gateway keeps the
 * latest report per (cluster, node) and counts key operations per cluster, root key, version and
 * minute. Rotations are recorded here too, so that `keys rotation status` can tell when an old
 * version is no longer used. Pure types and the FleetStore port: no I/O in core/.
 */

/** Key operations counted per cluster and version. */
export const USAGE_OPS = ['wrap', 'unwrap', 'rewrap'] as const;
export type UsageOp = (typeof USAGE_OPS)[number];

/** The latest report of one shim, as the gateway heard it. */
export interface NodeRecord {
  /** The calling identity's name (a cluster: `clusters add NAME` makes identity NAME). */
  readonly cluster: string;
  /** The control-plane node the shim runs on (its NODE_NAME). */
  readonly node: string;
  /** Instance and root key of the call the report came on. */
  readonly instance: string;
  readonly crk: string;
  readonly shimVersion: string;
  /** The key_id the shim gives kube-apiserver, and the root-key version behind it. */
  readonly kmsKeyId?: string | undefined;
  readonly keyVersion?: string | undefined;
  readonly apis: readonly string[];
  readonly cacheSize: number;
  /** `ok` or the shim's health problem. */
  readonly health: string;
  /** ISO 8601: when the report arrived. */
  readonly lastSeen: string;
  /** The gateway replica that heard it. */
  readonly replica: string;
}

/** One use of a root-key version by a cluster (counted, never stored one by one). */
export interface KeyUse {
  readonly cluster: string;
  readonly instance: string;
  readonly crk: string;
  /** The root-key version used: the one wrapped under, or the one of the unwrapped blob. */
  readonly version: string;
  readonly op: UsageOp;
  readonly at: Date;
}

/** Uses counted per minute. */
export interface UsageCount {
  readonly cluster: string;
  readonly instance: string;
  readonly crk: string;
  readonly version: string;
  readonly op: UsageOp;
  /** ISO 8601 start of the minute. */
  readonly minute: string;
  readonly count: number;
}

export interface UsageQuery {
  /** Minutes starting at or after this. */
  readonly since: Date;
  readonly instance?: string | undefined;
  readonly crk?: string | undefined;
  readonly cluster?: string | undefined;
}

/** A rotation started by `keys rotate` (CLI, API or console): from one version to the next. */
export interface RotationRecord {
  readonly instance: string;
  readonly crk: string;
  readonly fromVersion: string;
  readonly toVersion: string;
  /** ISO 8601. */
  readonly startedAt: string;
  /** Who rotated (identity name, `cli`, or `console:<identity>`). */
  readonly startedBy: string;
}

/**
 * Where fleet data lives: in memory and a JSON file beside the file store (one gateway), or in
 * PostgreSQL (shared by every replica). `noteNode` and `noteUse` are on the request path: they only
 * buffer, never throw and never wait; the buffer is written every flush interval and at close.
 * Reads see what every replica flushed (plus, for this replica, what it buffered).
 */
export interface FleetStore {
  noteNode(record: NodeRecord): void;
  noteUse(use: KeyUse): void;
  /** Latest report per (cluster, node, instance, crk), oldest lastSeen first. */
  nodes(): Promise<readonly NodeRecord[]>;
  usage(query: UsageQuery): Promise<readonly UsageCount[]>;
  /** Records a rotation (after the key store rotated). */
  startRotation(record: RotationRecord): Promise<void>;
  /** Rotations of a root key, newest first. */
  rotations(instance: string, crk: string): Promise<readonly RotationRecord[]>;
  /** Forgets a cluster's nodes (clusters remove); its usage counts stay for the audit trail. */
  forgetCluster(cluster: string): Promise<void>;
  /** Writes what is buffered now. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
