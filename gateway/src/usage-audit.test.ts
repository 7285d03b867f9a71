import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { seededRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { createLogger } from '@keygate/shared/log';
import type { AuditEvent, AuditSink } from './core/audit/audit-event.js';
import { eventLine, GENESIS_PREV } from './core/audit/audit-record.js';
import { formatRecord } from './core/audit/record-format.js';
import { createKeyService } from './core/keys/key-service.js';
import { UsageBudget } from './core/keys/usage-budget.js';
import { FakeHsm } from './testing/fake-hsm.js';
import { MemoryKeyStore } from './testing/memory-key-store.js';
import { USAGE_LIMIT_SUBJECT, UsageReporter } from './usage-audit.js';

class RecordingSink implements AuditSink {
  readonly events: AuditEvent[] = [];
  failing = false;
  assertAvailable(): void {}
  async append(event: AuditEvent): Promise<void> {
    if (this.failing) throw new Error('disk full');
    this.events.push(event);
  }
  async close(): Promise<void> {}
}

function world(policy: 'rotate' | 'refuse' = 'rotate') {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: 'info',
    destination: new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l));
        done();
      },
    }),
  });
  const random = seededRandom('usage-audit');
  const clock = { now: () => new Date('2026-02-01T00:00:00Z') };
  const store = new MemoryKeyStore();
  const reporter = new UsageReporter(logger, clock);
  const budget = new UsageBudget({ policy, warnAt: 6, rotateAt: 10, blockSize: 4 }, reporter.listener);
  const svc = createKeyService({ hsm: new FakeHsm(random), store, clock, random, usage: budget });
  return { lines, reporter, svc, store };
}

const wrap = (w: ReturnType<typeof world>, keyId: string) => w.svc.wrap({ instance: 'inst', keyId, aad: [] });

describe('usage limits: audit records of automatic rotations', () => {
  it('a rotation by count is one key.rotate record by system:usage-limit naming both versions', async () => {
    const w = world();
    const sink = new RecordingSink();
    w.reporter.auditTo(sink);
    const key = await w.svc.create({ instance: 'inst', name: 'k' });
    const v1 = key.versions[0]?.id as string;
    const made: string[] = [];
    for (let i = 0; i < 25; i++) made.push((await wrap(w, key.id)).keyVersionId);
    const after = await w.store.get('inst', key.id);
    const ids = after?.versions.map((v) => v.id) ?? [];
    assert.equal(ids.length, 3, '25 wraps at rotateAt 10: two rotations');
    assert.equal(made.filter((v) => v === v1).length, 10);
    assert.deepEqual(
      sink.events.map((e) => [e.operation, e.subject, e.fromKeyVersion, e.keyVersion, e.reason, e.reserved]),
      [
        ['key.rotate', USAGE_LIMIT_SUBJECT, ids[0], ids[1], 'count', 12],
        ['key.rotate', USAGE_LIMIT_SUBJECT, ids[1], ids[2], 'count', 12],
      ],
    );
    const e = sink.events[0] as AuditEvent;
    assert.equal(e.outcome, 'success');
    assert.equal(e.instance, 'inst');
    assert.equal(e.keyId, key.id);
    assert.match(e.requestId, /^[0-9a-f-]{36}$/);
    // The new fields reach the record line (the allow-list) and audit tail's text.
    const line = JSON.parse(eventLine(1, GENESIS_PREV, e)) as Record<string, unknown>;
    assert.equal(line.fromKeyVersion, ids[0]);
    assert.equal(line.reason, 'count');
    assert.equal(line.reserved, 12);
    assert.match(
      formatRecord({ ...e, seq: 1, prev: GENESIS_PREV, type: 'event' }),
      /from=.* reason=count reserved=12/,
    );
    // The warning is logged once per version (blocks 4, 8, 12 cross warnAt 6 once).
    const warns = w.lines.filter((l) => String(l.msg).startsWith('key version has reserved warnAt'));
    assert.deepEqual(
      warns.map((l) => l.versionId),
      ids,
    );
    assert.equal(w.lines.filter((l) => String(l.msg).startsWith('key rotated automatically')).length, 2);
  });

  it('an audit sink that cannot write: the wrap that rotated answers AUDIT_UNAVAILABLE, the next one works', async () => {
    const w = world();
    const sink = new RecordingSink();
    w.reporter.auditTo(sink);
    const key = await w.svc.create({ instance: 'inst', name: 'k' });
    for (let i = 0; i < 10; i++) await wrap(w, key.id);
    sink.failing = true;
    await assert.rejects(wrap(w, key.id), (err) => isKeygateError(err) && err.code === 'AUDIT_UNAVAILABLE');
    sink.failing = false;
    const next = await wrap(w, key.id);
    const after = await w.store.get('inst', key.id);
    assert.equal(after?.versions.length, 2, 'the rotation stays, and is not made twice');
    assert.equal(next.keyVersionId, after?.versions[1]?.id);
    assert.ok(
      w.lines.some((l) => String(l.msg).startsWith('audit record of an automatic key rotation not written')),
    );
    assert.equal(sink.events.length, 0);
  });

  it('refuse policy: no rotation, no system record (the refused wraps are audited as wrap failures)', async () => {
    const w = world('refuse');
    const sink = new RecordingSink();
    w.reporter.auditTo(sink);
    const key = await w.svc.create({ instance: 'inst', name: 'k' });
    for (let i = 0; i < 10; i++) await wrap(w, key.id);
    await assert.rejects(wrap(w, key.id), (err) => isKeygateError(err) && err.code === 'KEY_USAGE_LIMIT_ERR');
    assert.equal(sink.events.length, 0);
    assert.equal(
      w.lines.filter((l) => String(l.msg).startsWith('key version reached keys.usageLimit.rotateAt')).length,
      1,
    );
  });
});
