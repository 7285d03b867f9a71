import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { codeOfErrorCollection, errorCollection, errorCollectionFor } from './errors-body.js';
import { tokenRequest } from './iam.js';
import { unwrapRequest, wrapRequest, wrapResponse } from './key-actions.js';

describe('gateway API schemas', () => {
  it('accept Key Protect shaped wrap and unwrap bodies', () => {
    assert.ok(wrapRequest.safeParse({}).success);
    assert.ok(wrapRequest.safeParse({ plaintext: Buffer.alloc(32).toString('base64'), aad: ['a'] }).success);
    assert.ok(unwrapRequest.safeParse({ ciphertext: 'a2cB', aad: [] }).success);
    assert.ok(wrapResponse.safeParse({ ciphertext: 'AAAA', keyVersion: { id: 'v1' } }).success);
  });

  it('refuse unknown fields, bad base64 and empty ciphertexts', () => {
    assert.ok(!wrapRequest.safeParse({ plaintext: 'AAAA', extra: 1 }).success);
    assert.ok(!wrapRequest.safeParse({ plaintext: 'not base64!' }).success);
    assert.ok(!wrapRequest.safeParse({ plaintext: 'AAA' }).success);
    assert.ok(!unwrapRequest.safeParse({ ciphertext: '' }).success);
    assert.ok(!unwrapRequest.safeParse({ ciphertext: 'AAAA', aad: 'x' }).success);
  });

  it('build error collections with the fixed text, and read the code back', () => {
    const body = errorCollectionFor('KEY_DELETED_ERR');
    assert.ok(errorCollection.safeParse(body).success);
    assert.equal(body.resources[0]?.reasons?.[0]?.status, 410);
    assert.equal(codeOfErrorCollection(body), 'KEY_DELETED_ERR');
    assert.equal(codeOfErrorCollection({ resources: [] }), undefined);
    assert.equal(codeOfErrorCollection('x'), undefined);
  });

  it('accept only the IAM API key grant', () => {
    assert.ok(
      tokenRequest.safeParse({ grant_type: 'urn:ibm:params:oauth:grant-type:apikey', apikey: 'k' }).success,
    );
    assert.ok(!tokenRequest.safeParse({ grant_type: 'password', apikey: 'k' }).success);
  });
});
