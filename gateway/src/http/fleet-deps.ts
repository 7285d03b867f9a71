import type { FleetStore, UsageOp } from '../core/fleet/fleet.js';

/** Counters the fleet notes feed (http/fleet-metrics.ts). */
export interface FleetCounters {
  /** A shim report header was read: `ok`, or `malformed` (ignored). */
  report(outcome: 'ok' | 'malformed'): void;
  /** A successful key operation by a cluster. */
  use(cluster: string, op: UsageOp): void;
}

/** What the HTTP layer needs of the fleet (main.ts builds it from buildFleetStore). */
export interface FleetDeps {
  readonly store: FleetStore;
  /** This replica's name, written in the node records it hears. */
  readonly replica: string;
  /** A node whose last report is older than this is stale (fleet.staleAfter). */
  readonly staleAfterMs: number;
  readonly counters?: FleetCounters | undefined;
}
