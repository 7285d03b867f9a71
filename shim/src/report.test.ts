import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseShimReport } from '@keygate/shared';
import { KmsCore } from './core/kms-core.js';
import { shimReportHeader } from './report.js';
import { testCoreOptions } from './testing/core-options.js';
import { FakeGatewayClient } from './testing/fake-gateway-client.js';

describe('shim report header', () => {
  it('reports node, version, key_id and its version, APIs, cache size and health, and parses back', async () => {
    const core = new KmsCore(testCoreOptions(new FakeGatewayClient()));
    const before = parseShimReport(shimReportHeader('master-1', '0.1.0', core));
    assert.equal(before?.keyId, undefined);
    assert.notEqual(before?.health, 'ok');
    await core.refresh();
    const r = parseShimReport(shimReportHeader('master-1', '0.1.0', core));
    assert.ok(r !== undefined);
    assert.equal(r.node, 'master-1');
    assert.equal(r.version, '0.1.0');
    assert.equal(r.health, 'ok');
    assert.equal(r.keyId, core.status().keyId);
    assert.ok(r.keyId?.endsWith(`/${r.keyVersion}`));
    assert.deepEqual(r.apis, ['v2', 'v1beta1']);
    assert.equal(r.cacheSize, core.stats().cacheSize);
  });
});
