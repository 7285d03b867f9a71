import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { deriveDataKey, ShimAlg } from '@keygate/shared';
import { DekCache } from './dek-cache.js';

describe('DekCache', () => {
  it('evicts the least recently used entry past its size and zeroes it', () => {
    const cache = new DekCache({ maxEntries: 2, ttlMs: 1000 });
    const a = cache.put('a', Buffer.alloc(32, 1), 0);
    cache.put('b', Buffer.alloc(32, 2), 0);
    assert.ok(cache.get('a', 1)); // a is now most recent
    const keyA = a?.dataKey(ShimAlg.A256GCM);
    cache.put('c', Buffer.alloc(32, 3), 1);
    assert.equal(cache.size, 2);
    assert.equal(cache.get('b', 2), undefined);
    assert.ok(cache.get('a', 2));
    cache.clear();
    assert.equal(a?.destroyed, true);
    assert.ok(keyA?.every((x) => x === 0));
  });

  it('expires entries after the ttl and zeroes them', () => {
    const cache = new DekCache({ maxEntries: 10, ttlMs: 100 });
    const e = cache.put('a', Buffer.alloc(32, 7), 0);
    assert.ok(cache.get('a', 99));
    assert.equal(cache.get('a', 100), undefined);
    assert.equal(e?.destroyed, true);
    assert.equal(cache.misses, 1);
    assert.equal(cache.hits, 1);
  });

  it('is disabled by a zero ttl or size, and copies the DEK it is given', () => {
    assert.equal(new DekCache({ maxEntries: 10, ttlMs: 0 }).put('a', Buffer.alloc(32), 0), undefined);
    assert.equal(new DekCache({ maxEntries: 0, ttlMs: 10 }).put('a', Buffer.alloc(32), 0), undefined);
    const cache = new DekCache({ maxEntries: 1, ttlMs: 10 });
    const dek = Buffer.alloc(32, 9);
    const e = cache.put('a', dek, 0);
    dek.fill(0);
    // The entry's own copy still holds the nines: its payload key is the one derived from them.
    assert.deepEqual(e?.dataKey(ShimAlg.A256GCM), deriveDataKey(Buffer.alloc(32, 9), ShimAlg.A256GCM));
  });

  it('sweeps expired entries', () => {
    const cache = new DekCache({ maxEntries: 10, ttlMs: 10 });
    cache.put('a', Buffer.alloc(32), 0);
    cache.put('b', Buffer.alloc(32), 5);
    cache.sweep(12);
    assert.equal(cache.size, 1);
  });
});
