import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ckrKind, ckrToKeygate, ckrUnavailable } from './ckr-map.js';

function pkcs11Error(name: string): Error {
  return Object.assign(new Error(name), { code: 1, method: 'C_Test' });
}

describe('CKR mapping', () => {
  it('maps vendor names to stable codes and keeps the name for logs', () => {
    const cases: [string, string][] = [
      ['CKR_PIN_INCORRECT', 'HSM_PIN_INCORRECT'],
      ['CKR_PIN_LOCKED', 'HSM_PIN_LOCKED'],
      ['CKR_SESSION_HANDLE_INVALID', 'HSM_UNAVAILABLE'],
      ['CKR_DEVICE_ERROR', 'HSM_UNAVAILABLE'],
      ['CKR_ENCRYPTED_DATA_INVALID', 'UNPROCESSABLE_CIPHERTEXT_ERR'],
      ['CKR_FUNCTION_FAILED', 'HSM_ERROR'],
    ];
    for (const [ckr, code] of cases) {
      const e = ckrToKeygate(pkcs11Error(ckr));
      assert.equal(e.code, code, ckr);
      assert.equal(e.detail?.ckr, ckr);
      assert.equal(e.detail?.method, 'C_Test');
    }
    assert.equal(ckrToKeygate(new TypeError('boom')).code, 'HSM_ERROR');
  });

  it('makes any failure to get a session a 503, keeping the vendor name', () => {
    const e = ckrUnavailable(pkcs11Error('CKR_GENERAL_ERROR'));
    assert.equal(e.code, 'HSM_UNAVAILABLE');
    assert.equal(e.httpStatus, 503);
    assert.equal(e.detail?.ckr, 'CKR_GENERAL_ERROR');
    assert.equal(ckrUnavailable(new TypeError('boom')).code, 'HSM_UNAVAILABLE');
  });

  it('treats CKR_GENERAL_ERROR as bad data only while decrypting, else as a failing device (503 after retries)', () => {
    assert.equal(ckrKind(pkcs11Error('CKR_GENERAL_ERROR'), true), 'data');
    assert.equal(ckrKind(pkcs11Error('CKR_GENERAL_ERROR')), 'device');
    assert.equal(ckrToKeygate(pkcs11Error('CKR_GENERAL_ERROR')).code, 'HSM_UNAVAILABLE');
    assert.equal(ckrKind(pkcs11Error('CKR_KEY_HANDLE_INVALID')), 'handle');
  });
});
