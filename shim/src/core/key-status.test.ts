import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeygateError } from '@keygate/shared';
import { KeyStatus } from './key-status.js';

const err = (code: ConstructorParameters<typeof KeygateError>[0]) => new KeygateError(code);

describe('KeyStatus', () => {
  it('refuses on a proven key state and returns to active on a later success', () => {
    const k = new KeyStatus(() => true);
    k.adoptKeyId('keygate/i/c/v1');
    k.noteSuccess(k.epoch);
    assert.equal(k.refusal, undefined);
    assert.equal(k.noteFailure(err('KEY_ACTION_INVALID_STATE_ERR'), k.epoch), true);
    assert.equal(k.refusal, 'KEY_ACTION_INVALID_STATE_ERR');
    assert.equal(k.status().healthz, 'root key not active');
    // Transient faults while refused change neither the state nor what Status says.
    assert.equal(k.noteFailure(err('GATEWAY_UNAVAILABLE'), k.epoch), false);
    assert.equal(k.status().healthz, 'root key not active');
    assert.equal(k.noteFailure(err('KEY_DELETED_ERR'), k.epoch), true);
    assert.equal(k.status().healthz, 'root key destroyed');
    k.noteSuccess(k.epoch);
    assert.equal(k.refusal, undefined);
    assert.equal(k.status().healthz, 'ok');
  });

  it('never takes a key state from a transient fault', () => {
    const k = new KeyStatus(() => false);
    for (const code of [
      'GATEWAY_UNAVAILABLE',
      'GATEWAY_TIMEOUT',
      'GATEWAY_PROTOCOL_ERR',
      'OVERLOADED',
    ] as const) {
      assert.equal(k.noteFailure(err(code), k.epoch), false, code);
      assert.equal(k.state, 'active', code);
      assert.equal(k.refusal, undefined, code);
    }
  });

  it('ignores an answer overtaken by another one (a success sent before a disable, a refusal before an enable)', () => {
    const k = new KeyStatus(() => true);
    const before = k.epoch;
    assert.equal(k.noteFailure(err('KEY_ACTION_INVALID_STATE_ERR'), k.epoch), true);
    k.noteSuccess(before); // sent before the refusal was known
    assert.equal(k.refusal, 'KEY_ACTION_INVALID_STATE_ERR');
    const probe = k.epoch;
    k.noteSuccess(probe); // sent after: the key is active again
    assert.equal(k.refusal, undefined);
    assert.equal(k.noteFailure(err('KEY_ACTION_INVALID_STATE_ERR'), probe), false); // sent before the enable
    assert.equal(k.refusal, undefined);
  });

  it('refuses with NOT_READY once closed, whatever the key state', () => {
    const k = new KeyStatus(() => true);
    k.close();
    assert.equal(k.refusal, 'NOT_READY');
    k.noteSuccess(k.epoch);
    k.noteFailure(err('KEY_DELETED_ERR'), k.epoch);
    assert.equal(k.refusal, 'NOT_READY');
    assert.equal(k.status().healthz, 'shutting down');
  });
});
