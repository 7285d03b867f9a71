import { createMetricsRegistry, LATENCY_BUCKETS, metricName } from '@keygate/shared/metrics';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { UsageSample } from '../core/keys/usage-budget.js';
import type { Readiness } from './readiness.js';

/** The gateway's Prometheus metrics: operations by type and outcome, latencies, HSM sessions and recovery, load. */
export interface GatewayMetrics {
  readonly registry: Registry;
  observe(operation: string, outcome: string, code: string, seconds: number): void;
  /** A request refused by a rate limit (`limit` names it: token-per-certificate, …). */
  rateLimited(limit: string): void;
}

/** What the load gauges read when scraped. */
export interface LoadStats {
  readonly inFlight: number;
  readonly queued: number;
  /** Refused requests counted into audit summaries instead of written one by one. */
  readonly summarised: number;
  readonly connections: { readonly open: number; readonly handshaking: number };
  /** Connections closed at once by the per-source limits, by the limit, since start. */
  readonly connectionsRefused: Readonly<Record<string, number>>;
}

/** Creates the metrics; the gauges read `readiness()` and `load()` when scraped. */
export function createGatewayMetrics(
  readiness: () => Readiness,
  load: () => LoadStats = () => ({
    inFlight: 0,
    queued: 0,
    summarised: 0,
    connections: { open: 0, handshaking: 0 },
    connectionsRefused: {},
  }),
  processMetrics = true,
  usage: () => readonly UsageSample[] = () => [],
): GatewayMetrics {
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
    help: 'PKCS#11 session pool: open, busy and waiting operations; hung: sessions given up because their call hung, not returned yet.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const s = readiness().hsm.sessions;
      this.set({ state: 'open' }, s?.open ?? 0);
      this.set({ state: 'busy' }, s?.busy ?? 0);
      this.set({ state: 'waiting' }, s?.waiting ?? 0);
      this.set({ state: 'hung' }, s?.hung ?? 0);
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
  const operationsNow = new Gauge({
    name: metricName('gateway_operations_in_progress'),
    help: 'Key operations running (state=running) and waiting for a slot (state=queued); see limits.maxInFlight and maxQueued.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const l = load();
      this.set({ state: 'running' }, l.inFlight);
      this.set({ state: 'queued' }, l.queued);
    },
  });
  let summarisedSeen = 0;
  const summarised = new Counter({
    name: metricName('gateway_audit_refusals_summarised_total'),
    help: 'Refused or failed requests recorded in audit summary records (count) instead of one record each.',
    registers: [registry],
    collect() {
      const now = load().summarised;
      this.inc(now - summarisedSeen);
      summarisedSeen = now;
    },
  });
  const conns = new Gauge({
    name: metricName('gateway_connections'),
    help: 'TLS connections open (state=open) and still in their handshake (state=handshaking).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const c = load().connections;
      this.set({ state: 'open' }, c.open);
      this.set({ state: 'handshaking' }, c.handshaking);
    },
  });
  const refusedSeen = new Map<string, number>();
  const connsRefused = new Counter({
    name: metricName('gateway_connections_refused_total'),
    help: 'Connections closed before their handshake by a per-source limit (server.perSource).',
    labelNames: ['limit'],
    registers: [registry],
    collect() {
      for (const [limit, n] of Object.entries(load().connectionsRefused)) {
        this.inc({ limit }, n - (refusedSeen.get(limit) ?? 0));
        refusedSeen.set(limit, n);
      }
    },
  });
  const limited = new Counter({
    name: metricName('gateway_rate_limited_total'),
    help: 'Requests answered 429 RATE_LIMITED_ERR, by the limit that refused them.',
    labelNames: ['limit'],
    registers: [registry],
  });
  // One series per key this replica wraps under (its current version only: a rotation replaces
  // the series), so the label set stays as small as the keys in use.
  const usageReserved = new Gauge({
    name: metricName('key_version_encryptions_reserved'),
    help: 'AES-GCM encryptions reserved under the key version in the store, by every replica (an upper bound on those made; keys.usageLimit).',
    labelNames: ['instance', 'key', 'version'],
    registers: [registry],
    collect() {
      this.reset();
      for (const u of usage())
        this.set({ instance: u.instance, key: u.keyId, version: u.versionId }, u.reserved);
    },
  });
  const usageUsed = new Gauge({
    name: metricName('key_version_encryptions_used'),
    help: 'AES-GCM encryptions (wraps, rewraps) this replica made under the key version since it started.',
    labelNames: ['instance', 'key', 'version'],
    registers: [registry],
    collect() {
      this.reset();
      for (const u of usage()) this.set({ instance: u.instance, key: u.keyId, version: u.versionId }, u.used);
    },
  });
  void usageReserved;
  void usageUsed;
  void sessions;
  void ready;
  void missing;
  void recoveries;
  void operationsNow;
  void summarised;
  void conns;
  void connsRefused;
  // Bound children per label set: prom-client hashes a labels object on every call otherwise.
  const opChildren = new Map<string, { inc(): void }>();
  const latencyChildren = new Map<string, { observe(v: number): void }>();
  return {
    registry,
    rateLimited(limit) {
      limited.inc({ limit });
    },
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
