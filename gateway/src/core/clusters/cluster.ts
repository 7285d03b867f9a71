import type { Role } from '../auth/principal.js';
import type { FleetStore } from '../fleet/fleet.js';

/**
 * A cluster name is a SPIFFE path segment (`spiffe://keygate/cluster/NAME`), the same rule as
 * `keygate-gateway pki client --cluster`: letters, digits and `._-`, no `:`.
 */
export const CLUSTER_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
export const CLUSTER_NAME_RULE = '1..128 of A-Za-z0-9._-, first a letter or digit';

/** The roles a cluster's shim needs on its instance, unless `--roles` says otherwise. */
export const DEFAULT_CLUSTER_ROLES: readonly Role[] = ['wrap', 'unwrap', 'rewrap'];

/** The client certificate identity (SAN URI) of a cluster's shims. */
export function clusterCertIdentity(name: string): string {
  return `spiffe://keygate/cluster/${name}`;
}

/** The client certificate issued to a cluster, as recorded (never its key). */
export interface ClusterCert {
  /** Serial number, hex. */
  readonly serial: string;
  /** SHA-256 fingerprint of the DER, `AB:CD:…` as node:crypto prints it. */
  readonly fingerprint256: string;
  /** ISO 8601 expiry. */
  readonly notAfter: string;
}

/**
 * One onboarded cluster: its identity (name = cluster name, certificate identity
 * clusterCertIdentity(name), roles on one instance) and what was issued for it.
 */
export interface ClusterRecord {
  readonly name: string;
  readonly instance: string;
  /** The root key id its shims use (KP_CONFIG.CRK_ID). */
  readonly crk: string;
  readonly roles: readonly Role[];
  /** ISO 8601. */
  readonly createdAt: string;
  /** The gateway URLs written into its bundle, first = KP_CONFIG.URL. */
  readonly gatewayUrls: readonly string[];
  readonly cert: ClusterCert;
}

/** A cluster registered, with its new API key (shown once: written to the bundle, never stored). */
export interface RegisteredCluster {
  readonly record: ClusterRecord;
  readonly apiKey: string;
}

/**
 * Where onboarded clusters live: clusters.json beside the key store (file mode) or PostgreSQL.
 * `add` creates the identity, one API key and the record together; `remove` deletes all three,
 * after which the cluster's tokens are refused (AUTH_TOKEN_REVOKED). Errors: CLUSTER_EXISTS,
 * CLUSTER_NOT_FOUND, STORE_UNAVAILABLE.
 */
export interface ClusterRegistry {
  /** The names no new cluster may take, and the certificate identities already in use, with who holds them. */
  taken(): Promise<{ readonly names: ReadonlySet<string>; readonly certIdentities: ReadonlySet<string> }>;
  list(): Promise<readonly ClusterRecord[]>;
  get(name: string): Promise<ClusterRecord | undefined>;
  add(record: ClusterRecord): Promise<RegisteredCluster>;
  remove(name: string): Promise<void>;
  close(): Promise<void>;
}

/**
 * What the clusters commands use of the fleet view (issue 18's FleetStore) when the program has
 * one: `remove` forgets the cluster's nodes, `show` lists them.
 */
export type ClusterFleetHook = Pick<FleetStore, 'forgetCluster'> & Partial<Pick<FleetStore, 'nodes'>>;
