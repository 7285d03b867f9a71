export { createMetricsRegistry, LATENCY_BUCKETS, metricName } from './registry.js';
