import { createMetricsRegistry, LATENCY_BUCKETS, metricName } from '@keygate/shared/metrics';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Readiness } from './readiness.js';

/** The gateway's Prometheus metrics: operations by type and outcome, latencies, HSM sessions and recovery. */
export interface GatewayMetrics {
  readonly registry: Registry;
  observe(operation: string, outcome: string, code: string, seconds: number): void;
}

/** Creates the metrics; the gauges read `readiness()` when scraped. */
export function createGatewayMetrics(readiness: () => Readiness, processMetrics = true): GatewayMetrics {
  const registry = createMetricsRegistry({ component: 'gateway', processMetrics });
  const ops = new Counter({
    name: metricName('gateway_operations_total'),
    help: 'Key operations by operation, outcome and error code.',
    labelNames: ['operation', 'outcome', 'code'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: metricName('gateway_operation_duration_seconds'),
    help: 'Key operation latency, including the HSM and the audit append.',
    labelNames: ['operation', 'outcome'],
    buckets: [...LATENCY_BUCKETS],
    registers: [registry],
  });
  const sessions = new Gauge({
    name: metricName('hsm_sessions'),
    help: 'PKCS#11 session pool: open, busy and waiting operations.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const s = readiness().hsm.sessions;
      this.set({ state: 'open' }, s?.open ?? 0);
      this.set({ state: 'busy' }, s?.busy ?? 0);
      this.set({ state: 'waiting' }, s?.waiting ?? 0);
    },
  });
  const ready = new Gauge({
    name: metricName('hsm_ready'),
    help: '1 when the HSM is usable.',
    registers: [registry],
    collect() {
      this.set(readiness().hsm.ready ? 1 : 0);
    },
  });
  const missing = new Gauge({
    name: metricName('hsm_key_objects_missing'),
    help: 'Key objects the store lists as active that the HSM did not find (recovery running).',
    registers: [registry],
    collect() {
      this.set(readiness().hsm.recovery?.missingCount ?? 0);
    },
  });
  const recoveries = new Counter({
    name: metricName('hsm_recoveries_total'),
    help: 'HSM recovery steps (reopen, reinit, find) by outcome (recovered, missing, failed, busy).',
    labelNames: ['step', 'outcome'],
    registers: [registry],
    collect() {
      // The adapter keeps the monotonic counts; mirror them.
      this.reset();
      for (const s of readiness().hsm.recovery?.steps ?? []) {
        this.inc({ step: s.step, outcome: s.outcome }, s.count);
      }
    },
  });
  void sessions;
  void ready;
  void missing;
  void recoveries;
  // Bound children per label set: prom-client hashes a labels object on every call otherwise.
  const opChildren = new Map<string, { inc(): void }>();
  const latencyChildren = new Map<string, { observe(v: number): void }>();
  return {
    registry,
    observe(operation, outcome, code, seconds) {
      const key = `${operation} ${outcome}`;
      const opKey = `${key} ${code}`;
      let op = opChildren.get(opKey);
      if (op === undefined) {
        op = ops.labels({ operation, outcome, code });
        opChildren.set(opKey, op);
      }
      op.inc();
      let lat = latencyChildren.get(key);
      if (lat === undefined) {
        lat = latency.labels({ operation, outcome });
        latencyChildren.set(key, lat);
      }
      lat.observe(seconds);
    },
  };
}
