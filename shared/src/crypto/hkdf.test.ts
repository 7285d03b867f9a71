import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { constantTimeEqual, withZeroized, zeroize } from './bytes.js';
import { hkdfSha256 } from './hkdf.js';
import { seededRandom, systemRandom } from './random.js';

const hex = (s: string) => Buffer.from(s, 'hex');

describe('HKDF-SHA-256 (RFC 5869)', () => {
  it('matches RFC 5869 test case 1', () => {
    const okm = hkdfSha256(
      hex('0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b'),
      hex('000102030405060708090a0b0c'),
      hex('f0f1f2f3f4f5f6f7f8f9'),
      42,
    );
    assert.equal(
      okm.toString('hex'),
      '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
    );
  });
});

describe('byte helpers', () => {
  it('compares in constant time and handles different lengths', () => {
    assert.equal(constantTimeEqual(Buffer.from('abc'), Buffer.from('abc')), true);
    assert.equal(constantTimeEqual(Buffer.from('abc'), Buffer.from('abd')), false);
    assert.equal(constantTimeEqual(Buffer.from('abc'), Buffer.from('abcd')), false);
  });

  it('zeroes buffers, also when the callback throws', async () => {
    const a = Buffer.from('secret');
    zeroize(a, undefined);
    assert.ok(a.every((b) => b === 0));
    const b = Buffer.from('secret');
    await assert.rejects(
      withZeroized(b, () => {
        throw new Error('x');
      }),
    );
    assert.ok(b.every((x) => x === 0));
  });

  it('injects randomness: seeded sources repeat, the system source does not', () => {
    assert.deepEqual(seededRandom('s')(40), seededRandom('s')(40));
    assert.notDeepEqual(seededRandom('s')(40), seededRandom('t')(40));
    assert.notDeepEqual(systemRandom(32), systemRandom(32));
    assert.equal(systemRandom(7).length, 7);
  });
});
