import { shortHash } from '@keygate/shared';
import { createMetricsRegistry, LATENCY_BUCKETS, metricName } from '@keygate/shared/metrics';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { KmsCore } from './core/kms-core.js';
import type { BreakerState } from './gateway-client/breaker.js';

interface RpcChildren {
  readonly latency: { observe(v: number): void };
  /** Indexed by gRPC status code (0..16). */
  readonly calls: ({ inc(): void } | undefined)[];
}

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

/** The shim's Prometheus metrics; the observers are handed to the gRPC server and the gateway client. */
export class ShimMetrics {
  readonly registry: Registry;
  readonly #calls: Counter<'rpc' | 'code'>;
  readonly #latency: Histogram<'rpc'>;
  readonly #gateway: Counter<'url' | 'op' | 'outcome'>;
  readonly #breaker: Gauge<'url'>;
  readonly #rejected: Counter<'reason'>;

  constructor(
    core: () => KmsCore | undefined,
    limiter: () => { inFlight: number; queued: number; ewmaMs: number } | undefined = () => undefined,
    processMetrics = true,
  ) {
    const registry = createMetricsRegistry({ component: 'shim', processMetrics });
    this.registry = registry;
    this.#calls = new Counter({
      name: metricName('shim_grpc_calls_total'),
      help: 'KMS gRPC calls by RPC and gRPC status code.',
      labelNames: ['rpc', 'code'],
      registers: [registry],
    });
    this.#latency = new Histogram({
      name: metricName('shim_grpc_duration_seconds'),
      help: 'KMS gRPC call latency.',
      labelNames: ['rpc'],
      buckets: [...LATENCY_BUCKETS],
      registers: [registry],
    });
    this.#gateway = new Counter({
      name: metricName('shim_gateway_calls_total'),
      help: 'Gateway calls (each attempt) by URL, operation and outcome (ok or an error code).',
      labelNames: ['url', 'op', 'outcome'],
      registers: [registry],
    });
    this.#breaker = new Gauge({
      name: metricName('shim_gateway_breaker_state'),
      help: 'Circuit breaker per gateway URL: 0 closed, 1 half-open, 2 open.',
      labelNames: ['url'],
      registers: [registry],
    });
    this.#rejected = new Counter({
      name: metricName('shim_gateway_calls_rejected_total'),
      help: 'Gateway calls the shim did not send: refused at once (overloaded) or out of time while queued (expired).',
      labelNames: ['reason'],
      registers: [registry],
    });
    const load = (
      name: string,
      help: string,
      pick: (l: { inFlight: number; queued: number; ewmaMs: number }) => number,
    ) =>
      new Gauge({
        name: metricName(name),
        help,
        registers: [registry],
        collect() {
          const l = limiter();
          this.set(l ? pick(l) : 0);
        },
      });
    load(
      'shim_gateway_calls_in_flight',
      'Gateway calls running now (at most MAX_GATEWAY_CALLS).',
      (l) => l.inFlight,
    );
    load('shim_gateway_calls_queued', 'Gateway calls waiting for a free slot.', (l) => l.queued);
    load(
      'shim_gateway_call_estimate_seconds',
      'Moving average of gateway call durations, from which the limiter decides what can wait.',
      (l) => l.ewmaMs / 1000,
    );
    const stat = (name: string, help: string, pick: (c: KmsCore) => number) =>
      new Gauge({
        name: metricName(name),
        help,
        registers: [registry],
        collect() {
          const c = core();
          this.set(c ? pick(c) : 0);
        },
      });
    stat('shim_dek_cache_hits', 'DEK cache hits since start.', (c) => c.stats().cacheHits);
    stat('shim_dek_cache_misses', 'DEK cache misses since start.', (c) => c.stats().cacheMisses);
    stat('shim_dek_cache_size', 'Unwrapped DEKs held in the cache.', (c) => c.stats().cacheSize);
    stat('shim_current_dek_uses', 'Encryptions under the current DEK.', (c) => c.stats().currentDekUses);
    new Gauge({
      name: metricName('shim_key_id_info'),
      help: 'The current key_id, as a hash (1 on the current one).',
      labelNames: ['key_id_hash', 'healthz'],
      registers: [registry],
      collect() {
        this.reset();
        const s = core()?.status();
        if (s) this.set({ key_id_hash: s.keyId ? shortHash(s.keyId) : '', healthz: s.healthz }, 1);
      },
    });
  }

  // Bound children per RPC and code: prom-client hashes a labels object on every inc/observe
  // otherwise. The RPC names are a handful of constant strings, so one Map lookup finds them.
  readonly #byRpc = new Map<string, RpcChildren>();

  onCall = (rpc: string, code: number, seconds: number): void => {
    let c = this.#byRpc.get(rpc);
    if (c === undefined) {
      c = { latency: this.#latency.labels({ rpc }), calls: [] };
      this.#byRpc.set(rpc, c);
    }
    let calls = c.calls[code];
    if (calls === undefined) {
      calls = this.#calls.labels({ rpc, code: String(code) });
      c.calls[code] = calls;
    }
    calls.inc();
    c.latency.observe(seconds);
  };

  onGatewayOutcome = (url: string, op: string, outcome: string): void => {
    this.#gateway.inc({ url, op, outcome });
  };

  onGatewayRejected = (reason: 'overloaded' | 'expired'): void => {
    this.#rejected.inc({ reason });
  };

  onBreaker = (url: string, state: BreakerState): void => {
    this.#breaker.set({ url }, BREAKER_VALUE[state]);
  };
}
