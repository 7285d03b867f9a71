import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeygateError } from '../errors/index.js';
import { aes256GcmDecrypt, aes256GcmEncrypt } from './aes-gcm.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('AES-256-GCM', () => {
  // NIST GCM spec test case 16 (256-bit key, 96-bit IV, with AAD).
  const K = hex('feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308');
  const IV = hex('cafebabefacedbaddecaf888');
  const P = hex(
    'd9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39',
  );
  const A = hex('feedfacedeadbeeffeedfacedeadbeefabaddad2');
  const C = hex(
    '522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662',
  );
  const T = hex('76fc6ece0f4e1768cddf8853bb2d551b');

  it('matches the NIST test case 16 vector', () => {
    const out = aes256GcmEncrypt(K, IV, P, A);
    assert.equal(out.ciphertext.toString('hex'), C.toString('hex'));
    assert.equal(out.tag.toString('hex'), T.toString('hex'));
    assert.equal(aes256GcmDecrypt(K, IV, C, A, T).toString('hex'), P.toString('hex'));
  });

  it('rejects a wrong aad or tag with UNPROCESSABLE_CIPHERTEXT_ERR', () => {
    const bad = (fn: () => unknown) =>
      assert.throws(fn, (e: unknown) => isKeygateError(e) && e.code === 'UNPROCESSABLE_CIPHERTEXT_ERR');
    bad(() => aes256GcmDecrypt(K, IV, C, Buffer.from('other'), T));
    bad(() => aes256GcmDecrypt(K, IV, C, A, Buffer.alloc(16)));
    bad(() => aes256GcmDecrypt(K, IV, C, A, T.subarray(0, 12)));
  });
});
