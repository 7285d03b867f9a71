import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { systemClock } from '@keygate/shared';
import type { AuditEvent } from '../../core/audit/audit-event.js';
import { FileAuditAnchorStore } from './anchor-file.js';
import { listAuditFiles } from './audit-files.js';
import { FileAuditSink } from './file-sink.js';
import { auditVerifyKey, KeyFileAuditSigner } from './key-file-signer.js';
import { verifyAuditDir } from './verify-dir.js';

// This file is both the test and, with KEYGATE_AUDIT_CRASH_DIR set, the child process it kills.
const CHILD_DIR = process.env.KEYGATE_AUDIT_CRASH_DIR;
const CHILD_KEY = process.env.KEYGATE_AUDIT_CRASH_KEY;

const event = (i: number): AuditEvent => ({
  time: new Date().toISOString(),
  requestId: `req-${i}`,
  subject: 'prod-eu-1',
  instance: 'inst-a',
  operation: 'unwrap',
  outcome: 'success',
  latencyMs: 1,
});

/** Appends forever from 16 concurrent callers; prints each request id only after its append resolved. */
async function runChild(dir: string, keyPem: string): Promise<void> {
  const sink = await FileAuditSink.open({
    dir,
    signer: KeyFileAuditSigner.fromPem(keyPem),
    clock: systemClock,
    anchors: new FileAuditAnchorStore(`${dir}.anchor.json`),
    anchorIntervalMs: 100,
    checkpointEvery: 50,
    maxFileBytes: 16 * 1024,
  });
  let next = 0;
  const worker = async () => {
    for (;;) {
      const id = next++;
      await sink.append(event(id));
      process.stdout.write(`req-${id}\n`);
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
}

if (CHILD_DIR !== undefined && CHILD_KEY !== undefined) {
  await runChild(CHILD_DIR, CHILD_KEY);
} else {
  describe('audit log crash safety (real child process, SIGKILL)', () => {
    it('every append that resolved before SIGKILL is on disk and the chain verifies', async () => {
      // The anchor (and a SIGKILLed child's half-written anchor .tmp) sits beside the audit folder:
      // both inside one temp folder, removed as a whole.
      const base = await mkdtemp(join(tmpdir(), 'keygate-crash-'));
      const dir = join(base, 'audit');
      try {
        const keyPem = generateKeyPairSync('ed25519')
          .privateKey.export({ format: 'pem', type: 'pkcs8' })
          .toString();
        const keys = [auditVerifyKey(keyPem)];
        const child = spawn(process.execPath, [fileURLToPath(import.meta.url)], {
          env: { ...process.env, KEYGATE_AUDIT_CRASH_DIR: dir, KEYGATE_AUDIT_CRASH_KEY: keyPem },
          stdio: ['ignore', 'pipe', 'inherit'],
        });
        let out = '';
        child.stdout.setEncoding('utf8');
        const exited = new Promise<NodeJS.Signals | null>((resolve) =>
          child.on('exit', (_code, signal) => resolve(signal)),
        );
        child.stdout.on('data', (chunk: string) => {
          out += chunk;
          if (out.split('\n').length > 3000) child.kill('SIGKILL');
        });
        const signal = await exited;
        assert.equal(signal, 'SIGKILL');
        const acknowledged = out.split('\n').slice(0, -1); // a partial last line was never fully printed
        assert.ok(acknowledged.length >= 3000);

        // Before any restart: the chain verifies, or its only flaw is a torn last line.
        const before = await verifyAuditDir(dir, keys);
        if (!before.ok) {
          assert.equal(before.problem?.kind, 'torn', JSON.stringify(before.problem));
          const files = await listAuditFiles(dir);
          assert.equal(before.problem?.file, files.at(-1)?.name);
        }
        const onDisk = new Set<string>();
        for (const f of await listAuditFiles(dir)) {
          for (const line of (await readFile(join(dir, f.name), 'utf8')).split('\n')) {
            const m = /"requestId":"(req-\d+)"/.exec(line);
            if (m?.[1] !== undefined && line.endsWith('}')) onDisk.add(m[1]);
          }
        }
        const lost = acknowledged.filter((id) => !onDisk.has(id));
        assert.deepEqual(lost, [], 'acknowledged appends missing from disk');

        // Reopening cuts a torn line away, records the recovery, and the chain verifies end to end.
        // The anchor, written in the background until the kill, is never ahead of the log.
        const sink = await FileAuditSink.open({
          dir,
          signer: KeyFileAuditSigner.fromPem(keyPem),
          clock: systemClock,
          anchors: new FileAuditAnchorStore(`${dir}.anchor.json`),
        });
        await sink.append(event(-1));
        await sink.close();
        const after = await verifyAuditDir(dir, keys, { requireSealed: true });
        assert.equal(after.ok, true, JSON.stringify(after.problem));
        assert.ok(after.events >= acknowledged.length + 1);
        const newest = (await listAuditFiles(dir)).at(-1)?.name ?? '';
        assert.match(
          await readFile(join(dir, newest), 'utf8'),
          /"type":"recovery","time":"[^"]+","reason":"unclean-shutdown"/,
        );
      } finally {
        await rm(base, { recursive: true, force: true });
      }
    });
  });
}
