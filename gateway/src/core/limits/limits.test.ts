import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeygateError } from '@keygate/shared/errors';
import { Admission, type Release } from './admission.js';
import { TokenBuckets } from './token-buckets.js';

const codeOf = (fn: () => unknown): string | undefined => {
  try {
    fn();
  } catch (err) {
    return isKeygateError(err) ? err.code : 'not a KeygateError';
  }
  return undefined;
};

describe('TokenBuckets', () => {
  it('grants the burst, then one per 1/rate seconds, and says how long to wait', () => {
    const b = new TokenBuckets({ ratePerSecond: 2, burst: 3 });
    assert.deepEqual(
      [0, 0, 0].map(() => b.take('a', 1000)),
      [0, 0, 0],
    );
    assert.equal(b.take('a', 1000), 500);
    assert.equal(b.take('a', 1250), 250);
    assert.equal(b.take('a', 1500), 0);
    assert.equal(b.take('b', 1500), 0, 'keys are independent');
  });

  it('forgets the least recently used key beyond maxKeys (it starts full again)', () => {
    const b = new TokenBuckets({ ratePerSecond: 1, burst: 1 }, 2);
    b.take('a', 0);
    b.take('b', 0);
    b.take('a', 0); // a refused, and now the most recent
    b.take('c', 0); // evicts b
    assert.equal(b.size, 2);
    assert.equal(b.take('b', 0), 0, 'b was forgotten, so it starts full');
    assert.ok(b.take('c', 0) > 0, 'c is still tracked');
  });
});

describe('Admission', () => {
  const setup = (maxInFlight: number, maxQueued: number) => {
    let now = 0;
    const a = new Admission({ maxInFlight, maxQueued, now: () => now });
    return { a, tick: (ms: number) => (now += ms), at: () => now };
  };

  it('runs maxInFlight at once, queues maxQueued in order, refuses the rest with OVERLOADED', async () => {
    const { a } = setup(2, 2);
    const r1 = a.acquire(undefined) as Release;
    const r2 = a.acquire(undefined) as Release;
    assert.equal(typeof r1, 'function');
    const order: number[] = [];
    const queued = (n: number) =>
      (a.acquire(undefined) as Promise<Release>).then((r) => {
        order.push(n);
        return r;
      });
    const q1 = queued(1);
    const q2 = queued(2);
    assert.equal(
      codeOf(() => a.acquire(undefined)),
      'OVERLOADED',
    );
    assert.deepEqual(a.stats, { inFlight: 2, queued: 2 });
    r1();
    r1(); // a second release of the same slot changes nothing
    (await q1)();
    r2();
    (await q2)();
    assert.deepEqual(order, [1, 2]);
    assert.deepEqual(a.stats, { inFlight: 0, queued: 0 });
  });

  it('refuses an expired caller at once, and a queued one whose deadline passed before its turn', async () => {
    const { a, tick, at } = setup(1, 5);
    assert.equal(
      codeOf(() => a.acquire(at())),
      'DEADLINE_EXCEEDED',
    );
    const r = a.acquire(undefined) as Release;
    const late = a.acquire(at() + 100) as Promise<Release>;
    const onTime = a.acquire(at() + 1000) as Promise<Release>;
    tick(200);
    r();
    await assert.rejects(late, (e: unknown) => isKeygateError(e) && e.code === 'DEADLINE_EXCEEDED');
    (await onTime)();
    assert.deepEqual(a.stats, { inFlight: 0, queued: 0 });
  });

  it('a full queue first drops waiters whose callers have given up', async () => {
    const { a, tick, at } = setup(1, 1);
    a.acquire(undefined);
    const stale = a.acquire(at() + 10) as Promise<Release>;
    tick(20);
    const fresh = a.acquire(at() + 1000);
    assert.ok(fresh instanceof Promise, 'admitted to the queue in place of the stale waiter');
    await assert.rejects(stale, (e: unknown) => isKeygateError(e) && e.code === 'DEADLINE_EXCEEDED');
  });
});
