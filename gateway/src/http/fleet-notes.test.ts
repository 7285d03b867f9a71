import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeShimReport } from '@keygate/shared/api';
import { nodeRecordOf } from './fleet-notes.js';

const origin = {
  cluster: 'prod-eu-1',
  instance: 'inst-a',
  crk: 'crk-1',
  lastSeen: '2026-12-06T00:00:00.000Z',
  replica: 'gw-0',
};

describe('shim report header → node record', () => {
  it('takes the shim’s fields from the header and the cluster, key, time and replica from the call', () => {
    const header = encodeShimReport({
      node: 'master-1',
      version: '0.1.0',
      keyId: 'keygate/inst-a/crk-1/v2',
      keyVersion: 'v2',
      apis: ['v2', 'v1beta1'],
      cacheSize: 12,
      health: 'ok',
    });
    assert.deepEqual(nodeRecordOf(header, origin), {
      cluster: 'prod-eu-1',
      node: 'master-1',
      instance: 'inst-a',
      crk: 'crk-1',
      shimVersion: '0.1.0',
      kmsKeyId: 'keygate/inst-a/crk-1/v2',
      keyVersion: 'v2',
      apis: ['v2', 'v1beta1'],
      cacheSize: 12,
      health: 'ok',
      lastSeen: origin.lastSeen,
      replica: 'gw-0',
    });
  });

  it('keeps a shim’s health problem as it says it, and leaves out a key_id it does not have yet', () => {
    const header = encodeShimReport({
      node: 'm2',
      version: '0.1.0',
      apis: ['v2'],
      cacheSize: 0,
      health: 'no key_id yet: gateway unreachable',
    });
    const r = nodeRecordOf(header, origin);
    assert.equal(r?.health, 'no key_id yet: gateway unreachable');
    assert.equal(r?.kmsKeyId, undefined);
  });

  it('ignores malformed reports (bad node name, missing fields, bad encoding, unknown API, too long)', () => {
    for (const bad of [
      '',
      'node=;version=1;apis=v2;cache=0;health=ok',
      'node=m1;apis=v2;cache=0;health=ok',
      'node=m1;version=1;apis=v2;cache=-1;health=ok',
      'node=m1;version=1;apis=v3;cache=0;health=ok',
      'node=m1;version=1;apis=v2;cache=0;health=%E0%A4%A',
      'node=a%20b;version=1;apis=v2;cache=0;health=ok',
      `node=m1;version=1;apis=v2;cache=0;health=${'x'.repeat(1100)}`,
      'garbage',
    ]) {
      assert.equal(nodeRecordOf(bad, origin), undefined, bad);
    }
  });
});
