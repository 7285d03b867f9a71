import type { RotationRecord } from './fleet.js';

/**
 * What `keys rotation status`, GET /api/v2/keygate/keys/{id}/rotation and the console's rotation
 * page show (docs/fleet.md "Guided rotation"): per cluster, whether every node reports the new
 * version, whether the new version was used, and how much traffic still uses older versions.
 */

/** One node's place in a rotation. */
export interface NodeConvergence {
  readonly cluster: string;
  readonly node: string;
  readonly kmsKeyId?: string | undefined;
  readonly keyVersion?: string | undefined;
  /** It reports the rotation's new version (or a later one). */
  readonly converged: boolean;
  /** Not heard from within fleet.staleAfter: it neither blocks nor proves convergence. */
  readonly stale: boolean;
  readonly lastSeen: string;
}

/** Uses of one version by one cluster since the rotation started. */
export interface VersionUse {
  readonly version: string;
  readonly wraps: number;
  readonly unwraps: number;
  readonly rewraps: number;
  /** ISO 8601 start of the last minute it was used in. */
  readonly lastUsed?: string | undefined;
}

export interface ClusterRotation {
  readonly cluster: string;
  readonly nodes: readonly NodeConvergence[];
  /** Every fresh node reports the new version (and there is at least one). */
  readonly converged: boolean;
  /** A wrap or unwrap of the new version was seen from this cluster (its apiservers write with it). */
  readonly newVersionSeen: boolean;
  /** Older versions this cluster still used since the rotation started (data not yet re-encrypted). */
  readonly oldVersionUse: readonly VersionUse[];
}

export interface RotationStatus {
  readonly rotation: RotationRecord;
  readonly currentVersion: string;
  readonly clusters: readonly ClusterRotation[];
  /** Older versions may be disabled: every cluster converged and no use of them for the quiet window. */
  readonly safeToDisable: boolean;
  /** Why not (empty when safe), one sentence each. */
  readonly reasons: readonly string[];
  /** ISO 8601: from when the old versions have been unused (the quiet window counts from here). */
  readonly quietSince?: string | undefined;
}

/** Read side for the CLI, the admin API and the console. */
export interface RotationQueries {
  /** The latest rotation of the key with its status; undefined when the key was never rotated. */
  status(instance: string, crk: string): Promise<RotationStatus | undefined>;
}
