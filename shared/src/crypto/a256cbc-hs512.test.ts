import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeygateError } from '../errors/index.js';
import { a256cbcHs512Decrypt, a256cbcHs512Encrypt } from './a256cbc-hs512.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 7518 Appendix B.3 (AES_256_CBC_HMAC_SHA_512).
const B3 = {
  key: Buffer.from(Array.from({ length: 64 }, (_, i) => i)),
  plaintext: Buffer.from(
    'A cipher system must not be required to be secret, and it must be able to fall into the hands of the enemy without inconvenience',
    'ascii',
  ),
  iv: hex('1a f3 8c 2d c2 b9 6f fd d8 66 94 09 23 41 bc 04'),
  aad: Buffer.from('The second principle of Auguste Kerckhoffs', 'ascii'),
  ciphertext: hex(`
    4a ff aa ad b7 8c 31 c5 da 4b 1b 59 0d 10 ff bd 3d d8 d5 d3 02 42 35 26 91 2d a0 37 ec bc c7 bd
    82 2c 30 1d d6 7c 37 3b cc b5 84 ad 3e 92 79 c2 e6 d1 2a 13 74 b7 7f 07 75 53 df 82 94 10 44 6b
    36 eb d9 70 66 29 6a e6 42 7e a7 5c 2e 08 46 a1 1a 09 cc f5 37 0d c8 0b fe cb ad 28 c7 3f 09 b3
    a3 b7 5e 66 2a 25 94 41 0a e4 96 b2 e2 e6 60 9e 31 e6 e0 2c c8 37 f0 53 d2 1f 37 ff 4f 51 95 0b
    be 26 38 d0 9d d7 a4 93 09 30 80 6d 07 03 b1 f6`),
  tag: hex('4d d3 b4 c0 88 a7 f4 5c 21 68 39 64 5b 20 12 bf 2e 62 69 a8 c5 6a 81 6d bc 1b 26 77 61 95 5b c5'),
};

function assertUnprocessable(fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => isKeygateError(err) && err.code === 'UNPROCESSABLE_CIPHERTEXT_ERR');
}

describe('A256CBC-HS512 (RFC 7518 §5.2.5)', () => {
  it('reproduces the Appendix B.3 test vector', () => {
    const out = a256cbcHs512Encrypt(B3.key, B3.iv, B3.plaintext, B3.aad);
    assert.equal(out.ciphertext.toString('hex'), B3.ciphertext.toString('hex'));
    assert.equal(out.tag.toString('hex'), B3.tag.toString('hex'));
  });

  it('decrypts the Appendix B.3 vector', () => {
    const pt = a256cbcHs512Decrypt(B3.key, B3.iv, B3.ciphertext, B3.aad, B3.tag);
    assert.equal(pt.toString('ascii'), B3.plaintext.toString('ascii'));
  });

  it('rejects a changed aad, tag, IV, ciphertext or key with UNPROCESSABLE_CIPHERTEXT_ERR', () => {
    const flip = (b: Buffer, i: number) => {
      const c = Buffer.from(b);
      c[i] = (c[i] as number) ^ 1;
      return c;
    };
    assertUnprocessable(() => a256cbcHs512Decrypt(B3.key, B3.iv, B3.ciphertext, flip(B3.aad, 0), B3.tag));
    assertUnprocessable(() => a256cbcHs512Decrypt(B3.key, B3.iv, B3.ciphertext, B3.aad, flip(B3.tag, 31)));
    assertUnprocessable(() => a256cbcHs512Decrypt(B3.key, flip(B3.iv, 5), B3.ciphertext, B3.aad, B3.tag));
    assertUnprocessable(() => a256cbcHs512Decrypt(B3.key, B3.iv, flip(B3.ciphertext, 100), B3.aad, B3.tag));
    assertUnprocessable(() => a256cbcHs512Decrypt(flip(B3.key, 0), B3.iv, B3.ciphertext, B3.aad, B3.tag));
    assertUnprocessable(() =>
      a256cbcHs512Decrypt(B3.key, B3.iv, B3.ciphertext.subarray(0, 16), B3.aad, B3.tag),
    );
    assertUnprocessable(() =>
      a256cbcHs512Decrypt(B3.key, B3.iv, B3.ciphertext.subarray(0, 15), B3.aad, B3.tag),
    );
  });

  it('authenticates the aad length, so moving bytes between aad and IV fails', () => {
    const longerAad = Buffer.concat([B3.aad, B3.iv.subarray(0, 1)]);
    assertUnprocessable(() => a256cbcHs512Decrypt(B3.key, B3.iv, B3.ciphertext, longerAad, B3.tag));
  });

  it('refuses keys of the wrong size', () => {
    assert.throws(() => a256cbcHs512Encrypt(B3.key.subarray(0, 32), B3.iv, B3.plaintext, B3.aad), RangeError);
  });
});
