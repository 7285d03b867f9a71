import { collectDefaultMetrics, Registry } from 'prom-client';

const NAME = /^[a-z][a-z0-9_]*[a-z0-9]$/;

/** Histogram buckets (seconds) for request latencies, from 0.5 ms to 5 s. */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
];

/** `keygate_<name>`; `name` must be snake_case and must not repeat the prefix. */
export function metricName(name: string): string {
  if (!NAME.test(name) || name.startsWith('keygate_') || name.includes('__')) {
    throw new RangeError(`metric name must be snake_case without the keygate_ prefix: ${name}`);
  }
  return `keygate_${name}`;
}

/**
 * A fresh registry (never prom-client's global one, so tests and two servers in one process do
 * not collide), with process metrics under `keygate_` when `processMetrics` is true.
 */
export function createMetricsRegistry(options: { component: string; processMetrics?: boolean }): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component: options.component });
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'keygate_' });
  return registry;
}
