import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Clock } from '@keygate/shared';
import { isKeygateError } from '@keygate/shared/errors';
import type { AuditAnchor, AuditAnchorStore } from '../../core/audit/audit-anchor.js';
import type { AuditEvent } from '../../core/audit/audit-event.js';
import {
  checkpointSigningInput,
  eventLine,
  GENESIS_PREV,
  lineHash,
  recordLine,
  startSigningInput,
} from '../../core/audit/audit-record.js';
import { waitFor } from '../../testing/load.js';
import { FileAuditAnchorStore } from './anchor-file.js';
import { listAuditFiles } from './audit-files.js';
import { FileAuditSink, type FileAuditSinkOptions } from './file-sink.js';
import { auditVerifyKey, KeyFileAuditSigner } from './key-file-signer.js';
import { verifyAuditDir } from './verify-dir.js';

const newSigner = () =>
  KeyFileAuditSigner.fromPem(
    generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
  );
const signer = newSigner();
const keys = [auditVerifyKey(signer.publicKeyPem())];
const clock: Clock = { now: () => new Date(Date.UTC(2025, 0, 1)) };

const event = (i: number): AuditEvent => ({
  time: new Date(Date.UTC(2025, 0, 1) + i).toISOString(),
  requestId: `req-${i}`,
  instance: 'inst-a',
  keyId: 'crk-1',
  operation: 'unwrap',
  outcome: 'success',
  latencyMs: 1,
});

type Rec = Record<string, unknown> & { seq: number; type: string };

/** Every record of a folder, in file order. */
async function records(dir: string): Promise<Rec[]> {
  const out: Rec[] = [];
  for (const f of await listAuditFiles(dir)) {
    const text = await readFile(join(dir, f.name), 'utf8');
    for (const l of text.split('\n').slice(0, -1)) out.push(JSON.parse(l) as Rec);
  }
  return out;
}

/** Every record line of a folder, in file order. */
async function lineList(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const f of await listAuditFiles(dir)) {
    out.push(...(await readFile(join(dir, f.name), 'utf8')).split('\n').slice(0, -1));
  }
  return out;
}

const mismatch = (problem: string) => (e: unknown) =>
  isKeygateError(e) && e.code === 'AUDIT_ANCHOR_MISMATCH' && e.detail?.problem === problem;

describe('audit anchor and start records (real files)', () => {
  let root: string;
  const dirOf = (name: string) => join(root, name);
  const anchorOf = (name: string) => join(root, `${name}.anchor.json`);
  const opts = (name: string, more: Partial<FileAuditSinkOptions> = {}): FileAuditSinkOptions => ({
    dir: dirOf(name),
    signer,
    clock,
    anchors: new FileAuditAnchorStore(anchorOf(name)),
    checkpointEvery: 10,
    maxFileBytes: 64 * 1024,
    ...more,
  });
  /** One clean run of the gateway: open, `n` events, close. */
  const run = async (name: string, n: number, more: Partial<FileAuditSinkOptions> = {}) => {
    const sink = await FileAuditSink.open(opts(name, more));
    for (let i = 0; i < n; i++) await sink.append(event(i));
    await sink.close();
    return sink.stats;
  };
  const readAnchor = async (name: string): Promise<AuditAnchor> => {
    const r = await new FileAuditAnchorStore(anchorOf(name)).read();
    assert.equal(r.kind, 'anchor');
    return (r as { anchor: AuditAnchor }).anchor;
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'keygate-anchor-'));
  });
  after(async () => rm(root, { recursive: true, force: true }));

  it('every open writes a signed start record, boots count up across restarts, and the anchor follows the log', async () => {
    for (let b = 1; b <= 3; b++) assert.equal((await run('boots', 4)).boot, b);
    const recs = await records(dirOf('boots'));
    assert.deepEqual(
      recs.filter((r) => r.type === 'start').map((r) => [r.seq, r.boot]),
      [
        [1, 1],
        [7, 2],
        [13, 3],
      ],
    );
    const lines = await lineList(dirOf('boots'));
    const anchor = await readAnchor('boots');
    assert.deepEqual(
      { seq: anchor.seq, hash: anchor.hash, boot: anchor.boot, keyId: anchor.keyId },
      { seq: recs.length, hash: lineHash(lines.at(-1) ?? ''), boot: 3, keyId: signer.keyId },
    );
    // The anchor is a sibling of the folder, never in it.
    assert.deepEqual(
      (await readdir(dirOf('boots'))).filter((n) => !n.startsWith('audit-')),
      [],
    );
    const report = await verifyAuditDir(dirOf('boots'), keys, { requireSealed: true, anchor });
    assert.equal(report.ok, true, JSON.stringify(report.problem));
    assert.equal(report.starts, 3);
    assert.equal(report.lastBoot, 3);
  });

  it('an emptied folder, one whose files were deleted, and a deleted folder refuse to open (erased)', async () => {
    await run('erase', 30, { maxFileBytes: 2000 });
    await run('erase', 30, { maxFileBytes: 2000 });
    const files = await listAuditFiles(dirOf('erase'));
    assert.ok(files.length >= 2, 'rotated into several files');
    const anchor = await readAnchor('erase');

    await cp(dirOf('erase'), dirOf('emptied'), { recursive: true });
    await cp(anchorOf('erase'), anchorOf('emptied'));
    for (const f of files) await truncate(join(dirOf('emptied'), f.name), 0);
    await assert.rejects(FileAuditSink.open(opts('emptied')), (e: unknown) => {
      assert.ok(mismatch('erased')(e), String(e));
      const d = (e as { detail: Record<string, unknown> }).detail;
      assert.equal(d.anchorSeq, anchor.seq);
      assert.equal(d.anchorBoot, 2);
      assert.equal(d.foundSeq, 0);
      assert.equal(d.dir, dirOf('emptied'));
      return true;
    });
    // Nothing was written: the emptied files are as they were, and no new file appeared.
    const after = await listAuditFiles(dirOf('emptied'));
    assert.deepEqual(
      after.map((f) => f.name),
      files.map((f) => f.name),
    );
    assert.equal((await lineList(dirOf('emptied'))).length, 0);
    assert.equal((await verifyAuditDir(dirOf('emptied'), keys)).problem?.kind, 'empty');

    await cp(dirOf('erase'), dirOf('deleted'), { recursive: true });
    await cp(anchorOf('erase'), anchorOf('deleted'));
    for (const f of files) await rm(join(dirOf('deleted'), f.name));
    await assert.rejects(FileAuditSink.open(opts('deleted')), mismatch('erased'));

    await cp(anchorOf('erase'), anchorOf('gone'));
    await assert.rejects(FileAuditSink.open(opts('gone')), mismatch('erased'));
    assert.equal((await verifyAuditDir(dirOf('gone'), keys)).problem?.kind, 'empty');
  });

  it('whole records cut off the end behind the anchor refuse to open; the chain alone accepts them', async () => {
    await run('cut', 25);
    const lines = await lineList(dirOf('cut'));
    const [file] = await listAuditFiles(dirOf('cut'));
    await writeFile(join(dirOf('cut'), file?.name ?? ''), `${lines.slice(0, -3).join('\n')}\n`);
    assert.equal((await verifyAuditDir(dirOf('cut'), keys)).ok, true, 'the chain alone cannot tell');
    await assert.rejects(FileAuditSink.open(opts('cut')), (e: unknown) => {
      assert.ok(mismatch('cut-back')(e), String(e));
      assert.equal((e as { detail: Record<string, unknown> }).detail.foundSeq, lines.length - 3);
      return true;
    });
    const anchor = await readAnchor('cut');
    assert.equal((await verifyAuditDir(dirOf('cut'), keys, { anchor })).problem?.kind, 'cut-back');
  });

  it('records written after the last anchor write are not covered by it (documented: the stream copy is)', async () => {
    // A run that crashes: its anchor is the one written at open (the interval never comes).
    const crashed = await FileAuditSink.open(opts('late', { anchorIntervalMs: 60_000 }));
    for (let i = 0; i < 5; i++) await crashed.append(event(i));
    const lines = await lineList(dirOf('late'));
    assert.equal((await readAnchor('late')).seq, 1);
    const [file] = await listAuditFiles(dirOf('late'));
    await writeFile(join(dirOf('late'), file?.name ?? ''), `${lines.slice(0, -2).join('\n')}\n`);
    const sink = await FileAuditSink.open(opts('late'));
    await sink.close();
    assert.equal((await records(dirOf('late')))[4]?.type, 'recovery');
  });

  it('a log put back to an earlier clean shutdown refuses to open, though it verifies as sealed', async () => {
    await run('restore', 5);
    await cp(dirOf('restore'), dirOf('restore-copy'), { recursive: true });
    await run('restore', 5);
    await rm(dirOf('restore'), { recursive: true });
    await cp(dirOf('restore-copy'), dirOf('restore'), { recursive: true });
    const sealed = await verifyAuditDir(dirOf('restore'), keys, { requireSealed: true });
    assert.equal(sealed.ok, true, 'sealed: the last run ended cleanly, nothing more');
    await assert.rejects(FileAuditSink.open(opts('restore')), (e: unknown) => {
      assert.ok(mismatch('cut-back')(e), String(e));
      const d = (e as { detail: Record<string, unknown> }).detail;
      assert.deepEqual([d.anchorBoot, d.foundBoot, d.foundSeq], [2, 1, sealed.lastSeq]);
      return true;
    });
  });

  it('a changed record at the anchor, a removed anchor and a forged or foreign anchor refuse to open', async () => {
    await run('tamper', 5);
    const base = dirOf('tamper');
    const [file] = await listAuditFiles(base);
    const path = join(base, file?.name ?? '');
    const original = await readFile(path, 'utf8');
    const anchorText = await readFile(anchorOf('tamper'), 'utf8');

    await writeFile(path, original.replace(/"count":5/, '"count":4'));
    await assert.rejects(FileAuditSink.open(opts('tamper')), mismatch('replaced'));
    await writeFile(path, original);

    await rm(anchorOf('tamper'));
    await assert.rejects(FileAuditSink.open(opts('tamper')), mismatch('anchor-missing'));

    // An edited anchor (its signature no longer holds), something that is not an anchor, and an
    // anchor the gateway's key did not sign.
    const anchor = JSON.parse(anchorText) as AuditAnchor;
    await writeFile(anchorOf('tamper'), JSON.stringify({ ...anchor, seq: anchor.seq - 1 }));
    await assert.rejects(FileAuditSink.open(opts('tamper')), mismatch('anchor-invalid'));
    await writeFile(anchorOf('tamper'), 'not json');
    await assert.rejects(FileAuditSink.open(opts('tamper')), mismatch('anchor-invalid'));
    await writeFile(anchorOf('tamper'), anchorText);
    await assert.rejects(
      FileAuditSink.open({ ...opts('tamper'), signer: newSigner() }),
      mismatch('anchor-invalid'),
    );
    // Untouched, it opens.
    await (await FileAuditSink.open(opts('tamper'))).close();
  });

  it('a log written before anchors (no start records, no anchor) is taken over with a warning', async () => {
    const dir = dirOf('legacy');
    const lines: string[] = [];
    let prev = GENESIS_PREV;
    for (let i = 1; i <= 3; i++) {
      lines.push(eventLine(i, prev, event(i)));
      prev = lineHash(lines.at(-1) ?? '');
    }
    const unsigned = {
      seq: 4,
      prev,
      type: 'checkpoint' as const,
      time: clock.now().toISOString(),
      reason: 'close' as const,
      count: 3,
      keyId: signer.keyId,
    };
    const sig = Buffer.from(await signer.sign(checkpointSigningInput(unsigned))).toString('base64url');
    lines.push(recordLine({ ...unsigned, sig }));
    await mkdir(dir);
    await writeFile(join(dir, 'audit-000000000001-20250101T000000000Z.jsonl'), `${lines.join('\n')}\n`);
    const warnings: string[] = [];
    const sink = await FileAuditSink.open(opts('legacy', { onWarning: (m) => warnings.push(m) }));
    await sink.close();
    assert.equal(warnings.length, 1);
    assert.match(warnings[0] ?? '', /taken over/);
    const recs = await records(dir);
    assert.deepEqual(
      recs.map((r) => r.type),
      ['event', 'event', 'event', 'checkpoint', 'start', 'checkpoint'],
    );
    assert.equal(recs[4]?.boot, 1);
    assert.equal((await readAnchor('legacy')).seq, 6);
    assert.equal((await verifyAuditDir(dir, keys, { requireSealed: true })).ok, true);
  });

  it('acknowledging a loss: a signed loss record, a start record and a close; then it opens and verifies', async () => {
    await run('ack', 5);
    await run('ack', 5);
    const lines = await lineList(dirOf('ack'));
    const anchor = await readAnchor('ack');
    const [file] = await listAuditFiles(dirOf('ack'));
    const kept = lines.slice(0, 4);
    await writeFile(join(dirOf('ack'), file?.name ?? ''), `${kept.join('\n')}\n`);
    await assert.rejects(FileAuditSink.open(opts('ack')), mismatch('cut-back'));

    const ack = await FileAuditSink.open(
      opts('ack', { acknowledgeLoss: { reason: 'restored from backup' } }),
    );
    await ack.close();
    const recs = await records(dirOf('ack'));
    // The cut left an event last: a recovery record first (an unclean end), then the loss.
    assert.equal(recs[4]?.type, 'recovery');
    const loss = recs[5];
    assert.deepEqual(
      {
        seq: loss?.seq,
        type: loss?.type,
        problem: loss?.problem,
        anchorSeq: loss?.anchorSeq,
        anchorBoot: loss?.anchorBoot,
        anchorHash: loss?.anchorHash,
        foundSeq: loss?.foundSeq,
        foundHash: loss?.foundHash,
        reason: loss?.reason,
      },
      {
        seq: 6,
        type: 'loss',
        problem: 'cut-back',
        anchorSeq: anchor.seq,
        anchorBoot: 2,
        anchorHash: anchor.hash,
        foundSeq: 4,
        foundHash: lineHash(kept[3] ?? ''),
        reason: 'restored from backup',
      },
    );
    assert.deepEqual(
      recs.slice(6).map((r) => [r.type, r.boot ?? r.reason]),
      [
        ['start', 3],
        ['checkpoint', 'close'],
      ],
    );
    assert.equal(ack.acknowledged?.seq, 6);
    // Now the gateway opens again, and verify reports the loss.
    assert.equal((await run('ack', 2)).boot, 4);
    const report = await verifyAuditDir(dirOf('ack'), keys, {
      requireSealed: true,
      anchor: await readAnchor('ack'),
    });
    assert.equal(report.ok, true, JSON.stringify(report.problem));
    assert.deepEqual(
      report.losses.map((l) => [l.seq, l.problem, l.anchorSeq, l.foundSeq, l.reason]),
      [[6, 'cut-back', anchor.seq, 4, 'restored from backup']],
    );
    // A forged loss record (its reason changed) fails verify.
    const [f2] = await listAuditFiles(dirOf('ack'));
    const p2 = join(dirOf('ack'), f2?.name ?? '');
    await writeFile(p2, (await readFile(p2, 'utf8')).replace('restored from backup', 'nothing happened'));
    assert.equal((await verifyAuditDir(dirOf('ack'), keys)).problem?.kind, 'bad-loss');
  });

  it('acknowledging an erased log starts the chain again with the loss record at seq 1', async () => {
    await run('ack-erased', 3);
    for (const f of await listAuditFiles(dirOf('ack-erased'))) await rm(join(dirOf('ack-erased'), f.name));
    const ack = await FileAuditSink.open(
      opts('ack-erased', { acknowledgeLoss: { reason: 'disk replaced' } }),
    );
    await ack.close();
    const recs = await records(dirOf('ack-erased'));
    assert.deepEqual(
      recs.map((r) => [r.seq, r.type, r.problem ?? r.boot ?? r.reason]),
      [
        [1, 'loss', 'erased'],
        [2, 'start', 2],
        [3, 'checkpoint', 'close'],
      ],
    );
    assert.equal(recs[0]?.prev, GENESIS_PREV);
    await (await FileAuditSink.open(opts('ack-erased'))).close();
    assert.equal((await verifyAuditDir(dirOf('ack-erased'), keys, { requireSealed: true })).ok, true);
  });

  it('the anchor is never on the request path: a hanging or failing anchor store delays and fails no append', async () => {
    const store = controlledAnchors(new FileAuditAnchorStore(anchorOf('slow')));
    const errors: string[] = [];
    const sink = await FileAuditSink.open(
      opts('slow', {
        anchors: store,
        anchorIntervalMs: 100,
        onError: (e) => errors.push(String(e.detail?.reason)),
      }),
    );
    assert.equal(store.written.length, 1, 'the anchor at open');
    store.mode = 'hang';
    // 50 events: 5 checkpoints, each asks for an anchor write. None of them can finish.
    for (let i = 0; i < 50; i++) await sink.append(event(i));
    assert.ok(store.hanging > 0, 'an anchor write is in flight and does not return');
    sink.assertAvailable();
    store.mode = 'fail';
    store.release();
    for (let i = 50; i < 100; i++) await sink.append(event(i));
    await waitFor(
      () => errors.some((r) => r.includes('anchor write failed')),
      'the anchor write failure reported',
    );
    sink.assertAvailable();
    store.mode = 'ok';
    await sink.close();
    const recs = await records(dirOf('slow'));
    assert.equal(recs.filter((r) => r.type === 'event').length, 100);
    assert.equal(store.written.at(-1)?.seq, recs.length, 'close anchors the whole run');
  });

  it('an anchor that cannot be written at open keeps the sink unavailable until it can, with one start record', async () => {
    const store = controlledAnchors(new FileAuditAnchorStore(anchorOf('unanchored')));
    store.mode = 'fail';
    const sink = await FileAuditSink.open(opts('unanchored', { anchors: store }));
    assert.throws(
      () => sink.assertAvailable(),
      (e: unknown) => isKeygateError(e) && e.code === 'AUDIT_UNAVAILABLE',
    );
    await assert.rejects(
      sink.append(event(1)),
      (e: unknown) => isKeygateError(e) && e.code === 'AUDIT_UNAVAILABLE',
    );
    await sink.probe();
    assert.equal(sink.stats.available, false);
    store.mode = 'ok';
    await sink.probe();
    sink.assertAvailable();
    await sink.append(event(2));
    await sink.close();
    assert.deepEqual(
      (await records(dirOf('unanchored'))).map((r) => r.type),
      ['start', 'event', 'checkpoint'],
    );
  });

  it('a mismatch found only when a probe reopens the log keeps the sink unavailable, reported once', async () => {
    await run('late-refusal', 3);
    const blocker = join(root, 'late-blocker');
    await writeFile(blocker, 'a regular file, so the folder under it cannot be made');
    const errors: unknown[] = [];
    const sink = await FileAuditSink.open({
      ...opts('late-refusal'),
      dir: join(blocker, 'audit'),
      onError: (e) => errors.push(e),
    });
    assert.equal(sink.stats.available, false, 'an I/O error: unavailable, probing');
    await rm(blocker);
    // The folder can be made now, but it is empty while the anchor says the log had records.
    await sink.probe();
    await sink.probe();
    const unavailable = (e: unknown) => isKeygateError(e) && e.code === 'AUDIT_UNAVAILABLE';
    assert.throws(() => sink.assertAvailable(), unavailable);
    await assert.rejects(sink.append(event(1)), unavailable);
    const refusals = errors.filter(
      (e) => isKeygateError(e) && isKeygateError(e.cause) && e.cause.code === 'AUDIT_ANCHOR_MISMATCH',
    );
    assert.equal(refusals.length, 1);
    await sink.close();
    assert.deepEqual(await listAuditFiles(join(blocker, 'audit')), [], 'nothing was written');
  });

  it('verify: a noted head detects a cut-back the chain alone accepts; boots must count up; an edited start fails', async () => {
    await run('heads', 3);
    const noted = await verifyAuditDir(dirOf('heads'), keys);
    await run('heads', 3);
    const expect = { seq: noted.lastSeq, hash: noted.lastHash, source: 'the expected head' };
    assert.equal((await verifyAuditDir(dirOf('heads'), keys, { expect })).ok, true);
    const [file] = await listAuditFiles(dirOf('heads'));
    const path = join(dirOf('heads'), file?.name ?? '');
    const lines = await lineList(dirOf('heads'));
    await writeFile(path, `${lines.slice(0, noted.lastSeq - 2).join('\n')}\n`);
    assert.equal((await verifyAuditDir(dirOf('heads'), keys)).ok, true);
    const cut = await verifyAuditDir(dirOf('heads'), keys, { expect });
    assert.equal(cut.problem?.kind, 'cut-back', JSON.stringify(cut.problem));
    // Same length, another record at the noted seq: replaced.
    await writeFile(path, `${lines.join('\n')}\n`);
    const other = await verifyAuditDir(dirOf('heads'), keys, { expect: { ...expect, hash: 'f'.repeat(64) } });
    assert.equal(other.problem?.kind, 'replaced');

    // An edited start record (its boot) fails its signature.
    const editedStart = lines.map((l, i) => (i === noted.lastSeq ? l.replace('"boot":2', '"boot":5') : l));
    await writeFile(path, `${editedStart.join('\n')}\n`);
    const bad = await verifyAuditDir(dirOf('heads'), keys);
    assert.equal(bad.problem?.kind, 'bad-start');
    assert.equal(bad.problem?.line, noted.lastSeq + 1);

    // A validly signed start record whose boot skips one: a run is missing.
    const skip: string[] = [];
    let prev = GENESIS_PREV;
    const push = (line: string) => {
      skip.push(line);
      prev = lineHash(line);
    };
    const time = clock.now().toISOString();
    for (const [seq, boot] of [
      [1, 1],
      [2, 3],
    ] as const) {
      const unsigned = { seq, prev, type: 'start' as const, time, boot, keyId: signer.keyId };
      const sig = Buffer.from(await signer.sign(startSigningInput(unsigned))).toString('base64url');
      push(recordLine({ ...unsigned, sig }));
    }
    await writeFile(path, `${skip.join('\n')}\n`);
    const skipped = await verifyAuditDir(dirOf('heads'), keys);
    assert.equal(skipped.problem?.kind, 'bad-start');
    assert.match(skipped.problem?.message ?? '', /boot 3 where 2 was expected/);
  });
});

/** The file store, with writes that can be made to hang or fail. */
function controlledAnchors(inner: AuditAnchorStore) {
  let gate: { promise: Promise<void>; open: () => void } | undefined;
  const c = {
    mode: 'ok' as 'ok' | 'hang' | 'fail',
    written: [] as AuditAnchor[],
    hanging: 0,
    location: inner.location,
    read: () => inner.read(),
    async write(a: AuditAnchor): Promise<void> {
      if (c.mode === 'hang') {
        gate ??= (() => {
          let open = () => {};
          const promise = new Promise<void>((r) => {
            open = r;
          });
          return { promise, open };
        })();
        c.hanging++;
        await gate.promise;
        c.hanging--;
      }
      if (c.mode === 'fail') throw Object.assign(new Error('EIO: anchor disk failed'), { code: 'EIO' });
      await inner.write(a);
      c.written.push(a);
    },
    release() {
      gate?.open();
      gate = undefined;
    },
  };
  return c;
}
