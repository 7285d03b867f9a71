import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeygateError, systemClock } from '@keygate/shared';
import { FakeGatewayClient } from '../testing/fake-gateway-client.js';
import { GatewayLimiter } from './gateway-limiter.js';
import type { CallOptions, GatewayClient } from './ports.js';

const AAD = ['keygate-shim', 'crk'];
const clock = systemClock;

/** Records the budgets the limiter passes on and how many calls run at once. */
class Probe implements GatewayClient {
  readonly inner = new FakeGatewayClient();
  running = 0;
  maxRunning = 0;
  readonly budgets: number[] = [];
  async wrap(dek: Uint8Array, aad: readonly string[], o?: CallOptions) {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    this.budgets.push(o?.budgetMs ?? -1);
    try {
      return await this.inner.wrap(dek, aad);
    } finally {
      this.running--;
    }
  }
  unwrap(w: Uint8Array, aad: readonly string[]) {
    return this.inner.unwrap(w, aad);
  }
  closed = false;
  async close() {
    this.closed = true;
  }
}

const codeOf = (r: PromiseSettledResult<unknown>) =>
  r.status === 'fulfilled' ? 'ok' : r.reason instanceof KeygateError ? r.reason.code : String(r.reason);

describe('GatewayLimiter', () => {
  it('runs at most maxInFlight calls, queues what fits in the deadline, refuses the rest at once with OVERLOADED', async () => {
    const probe = new Probe();
    probe.inner.delayMs = 50;
    const limiter = new GatewayLimiter(probe, { maxInFlight: 4, deadlineMs: 1000, clock });
    // Teach it the call duration first.
    await Promise.all(Array.from({ length: 4 }, () => limiter.wrap(Buffer.alloc(32), AAD)));
    const settled = await Promise.allSettled(
      Array.from({ length: 400 }, () => limiter.wrap(Buffer.alloc(32), AAD)),
    );
    const codes = settled.map(codeOf);
    const ok = codes.filter((c) => c === 'ok').length;
    const overloaded = codes.filter((c) => c === 'OVERLOADED').length;
    assert.equal(probe.maxRunning, 4);
    assert.ok(ok >= 4, `ok ${ok}`);
    assert.ok(overloaded > 0, `overloaded ${overloaded}`);
    assert.equal(ok + overloaded, 400, codes.join());
    assert.equal(limiter.rejected + limiter.expired, overloaded);
    // Refusals are decided on arrival: none of them was sent to the gateway.
    assert.equal(probe.inner.wrapCalls, 4 + ok);
    assert.deepEqual([limiter.stats().inFlight, limiter.stats().queued], [0, 0]);
  });

  it('passes on what is left of the deadline, and sheds a queued call that can no longer finish in time without sending it', async () => {
    const probe = new Probe();
    probe.inner.delayMs = 300;
    const limiter = new GatewayLimiter(probe, { maxInFlight: 1, deadlineMs: 1000, clock, headroom: 10 });
    const first = limiter.wrap(Buffer.alloc(32), AAD);
    const second = limiter.wrap(Buffer.alloc(32), AAD, { budgetMs: 100 });
    await assert.rejects(second, (e: unknown) => e instanceof KeygateError && e.code === 'OVERLOADED');
    await first;
    assert.equal(probe.inner.wrapCalls, 1, 'the expired call was never sent');
    assert.equal(limiter.expired, 1);
    assert.ok((probe.budgets[0] ?? 0) <= 1000 && (probe.budgets[0] ?? 0) > 0);
    const third = limiter.wrap(Buffer.alloc(32), AAD, { budgetMs: 500 });
    await third;
    assert.ok((probe.budgets[1] ?? 0) <= 500 && (probe.budgets[1] ?? 0) > 0, String(probe.budgets));
    await assert.rejects(
      limiter.wrap(Buffer.alloc(32), AAD, { budgetMs: 0 }),
      (e: unknown) => e instanceof KeygateError && e.code === 'GATEWAY_TIMEOUT',
    );
    assert.equal(probe.inner.wrapCalls, 2, 'a call with no time left is not sent');
  });

  it('closes the client it wraps', async () => {
    const probe = new Probe();
    await new GatewayLimiter(probe, { maxInFlight: 1, deadlineMs: 1000, clock }).close();
    assert.equal(probe.closed, true);
  });
});
