import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorCollectionFor, errorKind } from '@keygate/shared';
import { fromHttpStatus } from './translate.js';

const URL = 'https://gw';

describe('fromHttpStatus', () => {
  it('believes a key state only when the body names its code with its status', () => {
    assert.equal(
      fromHttpStatus(410, errorCollectionFor('KEY_DELETED_ERR'), URL).error.code,
      'KEY_DELETED_ERR',
    );
    assert.equal(
      fromHttpStatus(409, errorCollectionFor('KEY_ACTION_INVALID_STATE_ERR'), URL).error.code,
      'KEY_ACTION_INVALID_STATE_ERR',
    );
    assert.equal(
      fromHttpStatus(404, errorCollectionFor('KEY_NOT_FOUND_ERR'), URL).error.code,
      'KEY_NOT_FOUND_ERR',
    );
    // A proxy's or a wrong URL's bare status, or a code that does not go with the status: not a key state.
    for (const [status, body] of [
      [410, { error: 'gone' }],
      [410, undefined],
      [404, '<html>not found</html>'],
      [409, {}],
      [503, errorCollectionFor('KEY_DELETED_ERR')],
      [404, errorCollectionFor('KEY_DELETED_ERR')],
    ] as const) {
      const f = fromHttpStatus(status, body, URL);
      assert.notEqual(f.error.code, 'KEY_DELETED_ERR', `${status} ${JSON.stringify(body)}`);
      assert.notEqual(f.error.code, 'KEY_NOT_FOUND_ERR', `${status} ${JSON.stringify(body)}`);
      assert.notEqual(f.error.code, 'KEY_ACTION_INVALID_STATE_ERR', `${status} ${JSON.stringify(body)}`);
    }
    assert.equal(fromHttpStatus(410, { error: 'gone' }, URL).error.code, 'GATEWAY_PROTOCOL_ERR');
  });

  it('treats a missing HSM object and a busy gateway as transient, keeping Retry-After', () => {
    const missing = fromHttpStatus(503, errorCollectionFor('HSM_KEY_OBJECT_MISSING'), URL);
    assert.equal(missing.error.code, 'GATEWAY_UNAVAILABLE');
    assert.equal(missing.retryable, true);
    const busy = fromHttpStatus(503, errorCollectionFor('OVERLOADED'), URL, '1');
    assert.equal(busy.error.code, 'GATEWAY_UNAVAILABLE');
    assert.deepEqual([busy.retryable, busy.busy, busy.retryAfterMs], [true, true, 1000]);
    const late = fromHttpStatus(504, errorCollectionFor('DEADLINE_EXCEEDED'), URL);
    assert.deepEqual([late.error.code, late.retryable, late.busy], ['GATEWAY_TIMEOUT', false, true]);
    assert.equal(fromHttpStatus(503, undefined, URL, 'soon').retryAfterMs, undefined);
  });

  it('fails only the call on a disabled key version, never as a key state or a retryable fault', () => {
    const f = fromHttpStatus(422, errorCollectionFor('KEY_VERSION_DISABLED_ERR'), URL);
    assert.deepEqual(
      [f.error.code, f.retryable, f.tokenRejected, f.busy],
      ['KEY_VERSION_DISABLED_ERR', false, undefined, undefined],
    );
    assert.equal(errorKind(f.error.code), 'input');
    // A bare 422 stays what older gateways meant by it.
    assert.equal(fromHttpStatus(422, undefined, URL).error.code, 'UNPROCESSABLE_CIPHERTEXT_ERR');
  });
});
