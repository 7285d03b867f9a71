import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffMs, CircuitBreaker } from './breaker.js';

describe('CircuitBreaker', () => {
  it('opens after consecutive failures, lets one trial through after the pause, and closes on success', () => {
    let t = 0;
    const b = new CircuitBreaker({ failureThreshold: 2, openMs: 100, now: () => t });
    b.onFailure();
    assert.equal(b.state, 'closed');
    b.onFailure();
    assert.equal(b.state, 'open');
    assert.equal(b.tryAcquire(), false);
    t = 100;
    assert.equal(b.tryAcquire(), true);
    assert.equal(b.state, 'half-open');
    assert.equal(b.tryAcquire(), false, 'only one trial at a time');
    b.onFailure();
    assert.equal(b.state, 'open');
    t = 200;
    assert.equal(b.tryAcquire(), true);
    b.onSuccess();
    assert.equal(b.state, 'closed');
    assert.equal(b.tryAcquire(), true);
  });

  it('backs off exponentially within the cap', () => {
    assert.equal(
      backoffMs(0, 50, 400, () => 0.999),
      49,
    );
    assert.equal(
      backoffMs(3, 50, 400, () => 0.999),
      399,
    );
    assert.equal(
      backoffMs(10, 50, 400, () => 0.5),
      200,
    );
    assert.equal(
      backoffMs(2, 50, 400, () => 0),
      0,
    );
  });
});
