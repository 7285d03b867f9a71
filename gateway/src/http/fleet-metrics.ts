import type { Clock } from '@keygate/shared';
import { metricName } from '@keygate/shared/metrics';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { UsageOp } from '../core/fleet/fleet.js';
import { nodeStates } from '../core/fleet/fleet-view.js';
import type { FleetCounters, FleetDeps } from './fleet-deps.js';

/**
 * The fleet's metrics on the gateway's registry: `keygate_fleet_nodes{state="fresh|stale"}` (read
 * from the store when scraped), `keygate_key_uses_total{cluster,op}` and
 * `keygate_fleet_reports_total{outcome="ok|malformed"}`. Cluster names are identity names (not
 * secrets, as many as clusters); versions and node names stay out of the labels so the series
 * stay bounded (the fleet view and `keys rotation status` have them). Returns `fleet` with its
 * counters attached, for AppDeps.fleet.
 */
export function withFleetMetrics(
  fleet: Omit<FleetDeps, 'counters'>,
  registry: Registry,
  clock: Clock,
): FleetDeps {
  new Gauge({
    name: metricName('fleet_nodes'),
    help: 'Shims whose latest report is recent (state=fresh) or older than fleet.staleAfter (state=stale).',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      try {
        const s = nodeStates(await fleet.store.nodes(), clock.now(), fleet.staleAfterMs);
        this.set({ state: 'fresh' }, s.fresh);
        this.set({ state: 'stale' }, s.stale);
      } catch {
        // The store is unreachable: the gauge keeps its last values rather than failing the scrape.
      }
    },
  });
  const uses = new Counter({
    name: metricName('key_uses_total'),
    help: 'Successful wraps, unwraps and rewraps by cluster (the calling identity) and operation.',
    labelNames: ['cluster', 'op'],
    registers: [registry],
  });
  const reports = new Counter({
    name: metricName('fleet_reports_total'),
    help: 'Shim report headers read: ok, or malformed (ignored; the call went on).',
    labelNames: ['outcome'],
    registers: [registry],
  });
  // Bound children: prom-client hashes a labels object on every call otherwise.
  const children = new Map<string, { inc(): void }>();
  const ok = reports.labels({ outcome: 'ok' });
  const malformed = reports.labels({ outcome: 'malformed' });
  const counters: FleetCounters = {
    report(outcome) {
      (outcome === 'ok' ? ok : malformed).inc();
    },
    use(cluster: string, op: UsageOp) {
      const key = `${op} ${cluster}`;
      let child = children.get(key);
      if (child === undefined) {
        child = uses.labels({ cluster, op });
        children.set(key, child);
      }
      child.inc();
    },
  };
  return { ...fleet, counters };
}
