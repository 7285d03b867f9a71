import { HEADERS, parseShimReport } from '@keygate/shared/api';
import type { Principal } from '../core/auth/principal.js';
import type { NodeRecord, UsageOp } from '../core/fleet/fleet.js';
import type { AppDeps } from './deps.js';
import type { Ctx } from './env.js';

export type { FleetCounters, FleetDeps } from './fleet-deps.js';

/** Where a report came from: the caller, the route's instance and root key, and when. */
export interface ReportOrigin {
  readonly cluster: string;
  readonly instance: string;
  readonly crk: string;
  readonly lastSeen: string;
  readonly replica: string;
}

/** The node record a shim report header stands for, or undefined when it is malformed. */
export function nodeRecordOf(header: string, origin: ReportOrigin): NodeRecord | undefined {
  const r = parseShimReport(header);
  if (r === undefined) return undefined;
  return {
    cluster: origin.cluster,
    node: r.node,
    instance: origin.instance,
    crk: origin.crk,
    shimVersion: r.version,
    kmsKeyId: r.keyId,
    keyVersion: r.keyVersion,
    apis: r.apis,
    cacheSize: r.cacheSize,
    health: r.health,
    lastSeen: origin.lastSeen,
    replica: origin.replica,
  };
}

/**
 * Called by wrap, unwrap and rewrap once the caller is authenticated and authorized: when the
 * request carries a shim report (HEADERS.shimReport), the node's latest record is noted for the
 * calling identity (the cluster). A malformed report is counted and ignored: it never fails the
 * call. Synchronous; without a fleet (AppDeps.fleet) it does nothing.
 */
export function noteShimReport(
  c: Ctx,
  deps: AppDeps,
  principal: Principal,
  instance: string,
  crk: string,
): void {
  const fleet = deps.fleet;
  if (fleet === undefined) return;
  const header = c.req.header(HEADERS.shimReport);
  if (header === undefined) return;
  const record = nodeRecordOf(header, {
    cluster: principal.subject,
    instance,
    crk,
    lastSeen: deps.clock.now().toISOString(),
    replica: fleet.replica,
  });
  if (record === undefined) {
    fleet.counters?.report('malformed');
    return;
  }
  fleet.store.noteNode(record);
  fleet.counters?.report('ok');
}

/** Counts a successful wrap, unwrap or rewrap under root-key version `version` for the caller. */
export function noteKeyUse(
  deps: AppDeps,
  principal: Principal,
  instance: string,
  crk: string,
  op: UsageOp,
  version: string,
): void {
  const fleet = deps.fleet;
  if (fleet === undefined) return;
  fleet.store.noteUse({ cluster: principal.subject, instance, crk, version, op, at: deps.clock.now() });
  fleet.counters?.use(principal.subject, op);
}
