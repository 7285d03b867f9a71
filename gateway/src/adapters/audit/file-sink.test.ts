import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Clock } from '@keygate/shared';
import { isKeygateError } from '@keygate/shared/errors';
import type { AuditEvent } from '../../core/audit/audit-event.js';
import { FileAuditAnchorStore } from './anchor-file.js';
import { listAuditFiles } from './audit-files.js';
import { FileAuditSink, type FileAuditSinkOptions } from './file-sink.js';
import { auditVerifyKey, KeyFileAuditSigner } from './key-file-signer.js';
import { tailAudit } from './tail.js';
import { verifyAuditDir } from './verify-dir.js';

const signer = KeyFileAuditSigner.fromPem(
  generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
);
const keys = [auditVerifyKey(signer.publicKeyPem())];

class FakeClock implements Clock {
  ms = Date.UTC(2025, 0, 1);
  now(): Date {
    return new Date(this.ms);
  }
}

export function event(i: number): AuditEvent {
  return {
    time: new Date(Date.UTC(2025, 0, 1) + i).toISOString(),
    requestId: `req-${i}`,
    certIdentity: 'spiffe://keygate/cluster/prod-eu-1',
    subject: 'prod-eu-1',
    instance: 'inst-a',
    keyId: 'crk-1',
    keyVersion: 'v1',
    operation: 'wrap',
    outcome: 'success',
    latencyMs: 3,
    wrappedDekHash: '0123456789abcdef',
  };
}

const isUnavailable = (e: unknown) => isKeygateError(e) && e.code === 'AUDIT_UNAVAILABLE';

function edit(l: string[], i: number, from: string | RegExp, to: string): string[] {
  return l.map((line, j) => (j === i ? line.replace(from, to) : line));
}

async function lines(dir: string, file: string): Promise<string[]> {
  return (await readFile(join(dir, file), 'utf8')).split('\n').slice(0, -1);
}

describe('file audit sink', () => {
  let root: string;
  const clock = new FakeClock();
  const opts = (dir: string, more: Partial<FileAuditSinkOptions> = {}): FileAuditSinkOptions => ({
    dir: join(root, dir),
    signer,
    clock,
    anchors: new FileAuditAnchorStore(join(root, `${dir}.anchor.json`)),
    checkpointEvery: 10,
    ...more,
  });

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'keygate-audit-'));
  });
  after(async () => rm(root, { recursive: true, force: true }));

  it('2,000 appends from 64 concurrent callers: exactly 2,000 events, group-committed, chain verifies', async () => {
    const sink = await FileAuditSink.open(opts('concurrent', { checkpointEvery: 500 }));
    sink.assertAvailable();
    let next = 0;
    const worker = async () => {
      while (next < 2000) await sink.append(event(next++));
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    const stats = sink.stats;
    await sink.close();
    assert.equal(stats.events, 2000);
    assert.ok(stats.syncs < 2000 / 4, `expected batching, got ${stats.syncs} syncs`);
    const report = await verifyAuditDir(join(root, 'concurrent'), keys, { requireSealed: true });
    assert.equal(report.ok, true, JSON.stringify(report.problem));
    assert.equal(report.events, 2000);
    assert.equal(report.sealed, true);
    assert.ok(report.checkpoints >= 4, `checkpoints: ${report.checkpoints}`);
    const [file] = await listAuditFiles(join(root, 'concurrent'));
    const all = (await lines(join(root, 'concurrent'), file?.name ?? '')).map((l) => JSON.parse(l));
    assert.deepEqual(
      all
        .filter((r) => r.type === 'event')
        .map((r) => r.requestId)
        .sort(),
      Array.from({ length: 2000 }, (_, i) => `req-${i}`).sort(),
    );
    assert.deepEqual(
      all.map((r) => r.seq),
      all.map((_, i) => i + 1),
    );
    assert.equal(all[0].prev, '0'.repeat(64));
  });

  it('resumes the chain across restarts and rotates by size and by time', async () => {
    const dir = join(root, 'rotate');
    let sink = await FileAuditSink.open(opts('rotate', { maxFileBytes: 3000 }));
    for (let i = 0; i < 30; i++) await sink.append(event(i));
    await sink.close();
    sink = await FileAuditSink.open(opts('rotate', { maxFileBytes: 3000, maxFileAgeMs: 3_600_000 }));
    for (let i = 30; i < 40; i++) await sink.append(event(i));
    clock.ms += 3_600_000;
    await sink.append(event(40));
    await sink.close();
    const files = await listAuditFiles(dir);
    assert.ok(files.length >= 4, `files: ${files.map((f) => f.name).join(', ')}`);
    const report = await verifyAuditDir(dir, keys, { requireSealed: true });
    assert.equal(report.ok, true, JSON.stringify(report.problem));
    assert.equal(report.events, 41);
    // The newest file was started by the time rotation, and starts where its predecessor ended.
    const newest = files.at(-1);
    const first = JSON.parse((await lines(dir, newest?.name ?? ''))[0] ?? '{}');
    assert.equal(first.seq, newest?.startSeq);
    // No recovery record after clean closes.
    const text = (await Promise.all(files.map((f) => readFile(join(dir, f.name), 'utf8')))).join('');
    assert.equal(text.includes('"type":"recovery"'), false);
    // tail shows the last records readably.
    const tail = await tailAudit(dir, 3);
    assert.equal(tail.length, 3);
    assert.match(
      tail[1] ?? '',
      /^#\d+ \S+ wrap success instance=inst-a key=crk-1@v1 subject=prod-eu-1 .* req=req-40 3ms$/,
    );
    assert.match(tail[2] ?? '', /checkpoint \(close/);
  });

  it('verify names the file and line of an edit, removal, reorder, truncation or bad checkpoint', async () => {
    const good = join(root, 'good');
    const sink = await FileAuditSink.open(opts('good'));
    for (let i = 0; i < 40; i++) await sink.append(event(i));
    await sink.close();
    const [file] = await listAuditFiles(good);
    const name = file?.name ?? '';
    const original = await lines(good, name);
    let n = 0;
    const mutate = async (change: (l: string[]) => string[] | string) => {
      const dir = join(root, `bad-${n++}`);
      await cp(good, dir, { recursive: true });
      const out = change([...original]);
      await writeFile(join(dir, name), typeof out === 'string' ? out : `${out.join('\n')}\n`);
      return dir;
    };
    const expectProblem = async (dir: string, kind: string, line: number, requireSealed = false) => {
      const r = await verifyAuditDir(dir, keys, { requireSealed });
      assert.equal(r.ok, false);
      assert.equal(r.problem?.kind, kind, JSON.stringify(r.problem));
      assert.equal(r.problem?.file, name);
      assert.equal(r.problem?.line, line, JSON.stringify(r.problem));
    };
    assert.equal((await verifyAuditDir(good, keys, { requireSealed: true })).ok, true);

    await expectProblem(await mutate((l) => edit(l, 6, '"latencyMs":3', '"latencyMs":4')), 'edited', 7);
    await expectProblem(
      await mutate((l) => edit(l, 6, '"outcome":"success"', '"outcome":"failure"')),
      'edited',
      7,
    );
    await expectProblem(await mutate((l) => l.filter((_, i) => i !== 6)), 'removed', 7);
    await expectProblem(
      await mutate((l) => [...l.slice(0, 6), l[7] ?? '', l[6] ?? '', ...l.slice(8)]),
      'reordered',
      7,
    );
    await expectProblem(await mutate((l) => l.filter((_, i) => i !== 0)), 'removed', 1);
    // Torn last line: the file was cut inside a record.
    const cut = await mutate((l) => `${l.join('\n')}\n`);
    const size = (await readFile(join(cut, name))).length;
    await truncate(join(cut, name), size - 7);
    await expectProblem(cut, 'torn', original.length);
    // Cut at a record boundary: the chain alone accepts it; a sealed log (or the anchor, or a
    // noted head: see anchor.test.ts) tells.
    const short = await mutate((l) => l.slice(0, -3));
    assert.equal((await verifyAuditDir(short, keys)).ok, true);
    assert.equal((await verifyAuditDir(short, keys)).sealed, false);
    await expectProblem(short, 'truncated', original.length - 3, true);
    // The close checkpoint's signature (and a checkpoint re-signed by another key).
    const last = original.length;
    await expectProblem(
      await mutate((l) => edit(l, last - 1, /"count":\d+/, '"count":99')),
      'bad-checkpoint',
      last,
    );
    // Another key: the first signed record, the start record, fails.
    const otherKey = auditVerifyKey(generateKeyPairSync('ed25519').publicKey);
    const r = await verifyAuditDir(good, [otherKey]);
    assert.equal(r.problem?.kind, 'bad-start');
    assert.equal(r.problem?.line, 1);
  });

  it('verify finds a removed or edited file in a rotated log', async () => {
    const dir = join(root, 'multi');
    const sink = await FileAuditSink.open(opts('multi', { maxFileBytes: 2000 }));
    for (let i = 0; i < 40; i++) await sink.append(event(i));
    await sink.close();
    const files = await listAuditFiles(dir);
    assert.ok(files.length >= 3);
    const second = files[1]?.name ?? '';
    const gone = join(root, 'multi-gone');
    await cp(dir, gone, { recursive: true });
    await rm(join(gone, second));
    const r1 = await verifyAuditDir(gone, keys);
    assert.equal(r1.problem?.kind, 'removed');
    assert.equal(r1.problem?.file, files[2]?.name);
    const edited = join(root, 'multi-edited');
    await cp(dir, edited, { recursive: true });
    const l = await lines(edited, second);
    l[l.length - 2] = (l[l.length - 2] ?? '').replace('req-', 'REQ-');
    await writeFile(join(edited, second), `${l.join('\n')}\n`);
    const r2 = await verifyAuditDir(edited, keys);
    assert.equal(r2.problem?.kind, 'edited');
    assert.equal(r2.problem?.file, second);
    assert.equal(r2.problem?.line, l.length - 1);
  });

  it('recovers from a torn last line with a recovery record', async () => {
    const dir = join(root, 'torn');
    // A run that never closes (a crash): its anchor is the one written at open (no interval write).
    const crashed = await FileAuditSink.open(
      opts('torn', { anchorIntervalMs: 60_000, checkpointIntervalMs: 3_600_000 }),
    );
    for (let i = 0; i < 5; i++) await crashed.append(event(i));
    const name = (await readdir(dir))[0] ?? '';
    // Half a record at the end, as a crash mid-write leaves it.
    await writeFile(join(dir, name), `${(await lines(dir, name)).join('\n')}\n{"seq":7,"prev":"ab`);
    assert.equal((await verifyAuditDir(dir, keys)).problem?.kind, 'torn');
    const reopened = await FileAuditSink.open(opts('torn'));
    await reopened.append(event(5));
    await reopened.close();
    const recs = (await lines(dir, name)).map((x) => JSON.parse(x));
    assert.deepEqual(
      recs.map((r) => r.type),
      ['start', 'event', 'event', 'event', 'event', 'event', 'recovery', 'start', 'event', 'checkpoint'],
    );
    const recovery = recs.find((r) => r.type === 'recovery');
    assert.equal(recovery?.tornBytes, 19);
    assert.equal(recovery?.reason, 'unclean-shutdown');
    assert.equal(recovery?.seq, 7);
    const report = await verifyAuditDir(dir, keys);
    assert.equal(report.ok, true, JSON.stringify(report.problem));
  });

  it('a failed durable write rejects that batch with AUDIT_UNAVAILABLE; the next write probes and recovers', async () => {
    let syncs = 0;
    let failAt = -1;
    const sink = await FileAuditSink.open(
      opts('fail', {
        beforeSync: () => {
          if (++syncs === failAt) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
        },
      }),
    );
    await sink.append(event(1));
    // The first append is in flight; the next two are group-committed together, and that sync fails.
    failAt = syncs + 2;
    const results = await Promise.allSettled([
      sink.append(event(2)),
      sink.append(event(3)),
      sink.append(event(4)),
    ]);
    assert.equal(results[0]?.status, 'fulfilled');
    for (const r of results.slice(1)) assert.ok(r.status === 'rejected' && isUnavailable(r.reason));
    assert.throws(() => sink.assertAvailable(), isUnavailable);
    await sink.append(event(4));
    sink.assertAvailable();
    await sink.close();
    const report = await verifyAuditDir(join(root, 'fail'), keys, { requireSealed: true });
    assert.equal(report.ok, true, JSON.stringify(report.problem));
    const [file] = await listAuditFiles(join(root, 'fail'));
    const text = await readFile(join(root, 'fail', file?.name ?? ''), 'utf8');
    assert.match(text, /"type":"recovery"[^\n]*"reason":"write-failure"/);
  });

  it('an unwritable folder (a path under a regular file, which fails even for root) is unavailable until fixed', async () => {
    const blocker = join(root, 'blocker');
    await writeFile(blocker, 'not a directory');
    const errors: string[] = [];
    const sink = await FileAuditSink.open({
      ...opts('x'),
      dir: join(blocker, 'audit'),
      onError: (e) => errors.push(String(e.detail?.vendorCode)),
    });
    assert.throws(() => sink.assertAvailable(), isUnavailable);
    await assert.rejects(sink.append(event(1)), isUnavailable);
    assert.ok(errors.includes('ENOTDIR') || errors.includes('EEXIST'), errors.join(','));
    await rm(blocker);
    await sink.probe();
    sink.assertAvailable();
    await sink.append(event(2));
    await sink.close();
    await assert.rejects(sink.append(event(3)), isUnavailable);
    const report = await verifyAuditDir(join(blocker, 'audit'), keys, { requireSealed: true });
    assert.equal(report.ok, true, JSON.stringify(report.problem));
    assert.equal(report.events, 1);
  });

  it('writes a checkpoint after the interval when events are unsigned', async () => {
    const sink = await FileAuditSink.open(
      opts('interval', { checkpointEvery: 1000, checkpointIntervalMs: 20 }),
    );
    await sink.append(event(1));
    clock.ms += 1000;
    await new Promise((r) => setTimeout(r, 60));
    await sink.close();
    const [file] = await listAuditFiles(join(root, 'interval'));
    const recs = (await lines(join(root, 'interval'), file?.name ?? '')).map((x) => JSON.parse(x));
    assert.deepEqual(
      recs.map((r) => r.reason ?? r.type),
      ['start', 'event', 'interval', 'close'],
    );
  });
});
