import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AuditEvent, AuditSink } from './audit-event.js';
import { RefusalSummary } from './refusal-summary.js';

function setup(windowMs = 1000, maxKinds?: number) {
  let now = Date.parse('2026-12-01T00:00:00Z');
  const written: AuditEvent[] = [];
  const sink: AuditSink = {
    assertAvailable: () => undefined,
    append: async (e) => {
      written.push(e);
    },
    close: async () => undefined,
  };
  const clock = { now: () => new Date(now) };
  const s = new RefusalSummary({ sink, clock, windowMs, ...(maxKinds ? { maxKinds } : {}) });
  const refusal = (cert: string, code = 'AUTH_APIKEY_INVALID', n = 0): AuditEvent => ({
    time: new Date(now).toISOString(),
    requestId: `req-${n}`,
    certIdentity: cert,
    operation: 'token.issue',
    outcome: 'denied',
    errorCode: code as AuditEvent['errorCode'],
    latencyMs: 1,
  });
  return { s, written, refusal, tick: (ms: number) => (now += ms) };
}

/** How many refusals the written records stand for. */
const accounted = (es: readonly AuditEvent[]) => es.reduce((n, e) => n + (e.count ?? 1), 0);

describe('RefusalSummary', () => {
  it('writes the first refusal of a kind, counts the rest of its window into one summary', async () => {
    const { s, written, refusal, tick } = setup();
    for (let i = 0; i < 500; i++) await s.record(refusal('attacker', undefined, i));
    await s.record(refusal('other-cert'));
    assert.equal(written.length, 2, 'one record per kind so far');
    tick(1000);
    s.flushEnded();
    await new Promise((r) => setImmediate(r));
    assert.equal(written.length, 3);
    const summary = written[2];
    assert.equal(summary?.count, 499);
    assert.equal(summary?.requestId, 'req-499');
    assert.ok(summary?.since !== undefined && summary.since <= String(summary.time));
    assert.equal(accounted(written), 501);
    assert.equal(s.summarised, 499);
  });

  it('a new window starts with a record of its own; flushAll writes what is pending', async () => {
    const { s, written, refusal, tick } = setup();
    await s.record(refusal('a'));
    await s.record(refusal('a'));
    tick(1500);
    await s.record(refusal('a')); // a new window: the old summary is written first, then this one
    await s.record(refusal('a', 'AUTH_GRANT_TYPE_INVALID')); // another kind
    await s.record(refusal('a'));
    await s.flushAll();
    assert.deepEqual(
      written.map((e) => [e.errorCode, e.count ?? 1]),
      [
        ['AUTH_APIKEY_INVALID', 1],
        ['AUTH_APIKEY_INVALID', 1],
        ['AUTH_APIKEY_INVALID', 1],
        ['AUTH_GRANT_TYPE_INVALID', 1],
        ['AUTH_APIKEY_INVALID', 1],
      ],
    );
    assert.equal(accounted(written), 5);
  });

  it('beyond maxKinds, new kinds fold into one per operation and code (memory stays bounded)', async () => {
    const { s, written, refusal } = setup(1000, 3);
    for (let i = 0; i < 1000; i++) await s.record(refusal(`cert-${i}`));
    await s.flushAll();
    assert.ok(written.length <= 5, `${written.length} records`);
    assert.equal(accounted(written), 1000);
  });
});
