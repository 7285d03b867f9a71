import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter } from 'prom-client';
import { createMetricsRegistry, metricName } from './registry.js';

describe('metrics', () => {
  it('prefixes names with keygate_ and refuses bad names', () => {
    assert.equal(metricName('gateway_ops_total'), 'keygate_gateway_ops_total');
    assert.throws(() => metricName('Bad-Name'), RangeError);
    assert.throws(() => metricName('keygate_twice'), RangeError);
  });

  it('gives each caller its own registry with process metrics and a component label', async () => {
    const a = createMetricsRegistry({ component: 'shim' });
    const b = createMetricsRegistry({ component: 'gateway', processMetrics: false });
    const c = new Counter({ name: metricName('test_total'), help: 'test', registers: [a] });
    c.inc();
    const text = await a.metrics();
    assert.match(text, /keygate_test_total\{component="shim"\} 1/);
    assert.match(text, /keygate_process_cpu_user_seconds_total/);
    assert.ok(!(await b.metrics()).includes('keygate_test_total'));
  });
});
