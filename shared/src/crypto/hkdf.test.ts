import assert from 'node:assert/strict';
import { hkdfSync, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { allocSecret, constantTimeEqual, secretFromBase64, viewOf, withZeroized, zeroize } from './bytes.js';
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

describe('HKDF-SHA-256 on HMAC', () => {
  it('matches RFC 5869 test case 3 (no salt, no info)', () => {
    const okm = hkdfSha256(hex('0b'.repeat(22)), Buffer.alloc(0), '', 42);
    assert.equal(
      okm.toString('hex'),
      '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
    );
  });

  it('agrees with crypto.hkdfSync for the sizes the shim derives', () => {
    for (const len of [32, 64, 100]) {
      const ikm = randomBytes(32);
      const salt = Buffer.alloc(32);
      const okm = hkdfSha256(ikm, salt, 'keygate/shim/v1/A256GCM', len);
      assert.deepEqual(okm, Buffer.from(hkdfSync('sha256', ikm, salt, 'keygate/shim/v1/A256GCM', len)));
    }
  });
});

describe('key material buffers', () => {
  it('decodes base64 key material into its own buffer and refuses what is not canonical', () => {
    const key = randomBytes(32);
    const out = secretFromBase64(key.toString('base64'), 16, 64);
    assert.deepEqual(out, key);
    assert.equal(out?.buffer.byteLength, 32, 'not a slice of a shared pool');
    assert.equal(secretFromBase64(key.toString('base64').replace(/.$/, '!'), 16, 64), undefined);
    assert.equal(secretFromBase64(randomBytes(8).toString('base64'), 16, 64), undefined);
    assert.equal(secretFromBase64('', 16, 64), undefined);
    const view = viewOf(new Uint8Array(key.buffer, key.byteOffset, 32));
    assert.equal(view.buffer, key.buffer, 'a view, not a copy');
    assert.equal(allocSecret(32).buffer.byteLength, 32);
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
