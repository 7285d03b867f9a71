import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { tokenUrlsFor } from './token-source.js';

describe('token URLs', () => {
  it('fail over across the gateways when TOKEN_URL is one of them', () => {
    assert.deepEqual(
      tokenUrlsFor('https://gw-a:8443/identity/token', [
        'https://gw-a:8443',
        'https://gw-b:8443/',
        'https://gw-c:9443',
      ]),
      [
        'https://gw-a:8443/identity/token',
        'https://gw-b:8443/identity/token',
        'https://gw-c:9443/identity/token',
      ],
    );
  });

  it('keep a separate IAM endpoint as the only token URL', () => {
    assert.deepEqual(
      tokenUrlsFor('https://iam.example/identity/token', ['https://gw-a:8443', 'https://gw-b:8443']),
      ['https://iam.example/identity/token'],
    );
  });
});
