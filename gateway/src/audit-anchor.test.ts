import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sha256 } from '@keygate/shared/crypto';
import { createGatewayFixture, type GatewayFixture } from './testing/gateway-fixture.js';
import { CLI, fetchToken, serve, type TokenModeSetup, writeTokenModeConfig } from './testing/token-mode.js';

/** What a CLI run printed and how it ended. */
interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function cli(args: readonly string[], env: Record<string, string> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? null), stdout, stderr }),
    );
  });
}

/**
 * Starts `serve` and waits until it exits (a refusal) or says it listens (then it is stopped,
 * and `listening` is true: the refusal the caller expected did not happen).
 */
function serveExpectingRefusal(
  config: string,
  env: Record<string, string>,
): Promise<Ran & { listening: boolean }> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
    if (stdout.includes('"msg":"gateway listening"')) child.kill('SIGTERM');
  });
  child.stderr.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  return once(child, 'exit').then(([code]) => ({
    code: code as number | null,
    stdout,
    stderr,
    listening: stdout.includes('"msg":"gateway listening"'),
  }));
}

/** The audit record lines of a folder's files, in order. */
function fileLines(dir: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.jsonl'))
    .sort()
    .flatMap((n) => readFileSync(join(dir, n), 'utf8').split('\n').slice(0, -1));
}

describe('the audit anchor with real gateway processes: serve refuses an erased or cut-back log', () => {
  let fx: GatewayFixture;
  let setup: TokenModeSetup;
  let anchorFile: string;
  let saved: string;
  let head: { seq: string; hash: string };
  const procs: ChildProcess[] = [];

  before(async () => {
    fx = await createGatewayFixture();
    setup = await writeTokenModeConfig(fx, 'anchored', { auditStdout: true });
    anchorFile = `${setup.auditDir}.anchor.json`;
    saved = join(fx.softhsm.dir, 'audit-after-run-1');
  });

  after(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    fx?.softhsm.cleanup();
  });

  /** One run of the gateway: start, one audited token request, SIGTERM. Returns its stdout. */
  const runGateway = async (): Promise<string> => {
    const gw = await serve(setup.config, fx.softhsm.env);
    procs.push(gw.child);
    await fetchToken(gw.url, fx.ca.certPem, fx.clients.allowed, setup.apiKey);
    const exited = once(gw.child, 'exit');
    gw.child.kill('SIGTERM');
    await exited;
    assert.equal(gw.child.exitCode, 0);
    return gw.stdout();
  };
  const verify = (...args: string[]) => cli(['audit', 'verify', ...args, '--key', setup.auditPublicKeyFile]);

  it('the stream copy on stdout is the log itself: a chain that verifies, and whose head anchors the file log', async () => {
    await runGateway();
    const run1 = fileLines(setup.auditDir).length;
    cpSync(setup.auditDir, saved, { recursive: true });
    const stdout = await runGateway();
    // The head of the file log, as an auditor would note it.
    const last = fileLines(setup.auditDir).at(-1) ?? '';
    head = { seq: String((JSON.parse(last) as { seq: number }).seq), hash: sha256(last).toString('hex') };
    const copy = stdout.split('\n').filter((l) => l.startsWith('{"seq":'));
    assert.deepEqual(copy, fileLines(setup.auditDir).slice(run1), 'run 2 on stdout, byte for byte');
    assert.match(copy[0] ?? '', /"type":"start".*"boot":2/);
    const copyFile = join(fx.softhsm.dir, 'shipped-copy.jsonl');
    writeFileSync(copyFile, `${copy.join('\n')}\n`);
    const shipped = await verify(copyFile, '--pruned');
    assert.equal(shipped.code, 0, shipped.stdout + shipped.stderr);
    // The shipped copy's head is the file log's: the copy anchors the file log.
    assert.match(shipped.stdout, new RegExp(`^head: seq ${head.seq} hash ${head.hash} boot 2$`, 'm'));
    const dir = await verify(
      setup.auditDir,
      '--sealed',
      '--expect-seq',
      head.seq,
      '--expect-head',
      head.hash,
    );
    assert.match(dir.stdout, /^OK: .*2 starts.*sealed$/m);
  });

  it('a log put back to an earlier clean shutdown: serve refuses; it verifies as sealed, but not against the head or the anchor', async () => {
    rmSync(setup.auditDir, { recursive: true });
    cpSync(saved, setup.auditDir, { recursive: true });
    const refused = await serveExpectingRefusal(setup.config, fx.softhsm.env);
    assert.equal(refused.listening, false, 'the gateway started on a cut-back log');
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /AUDIT_ANCHOR_MISMATCH: the audit log does not match its anchor \(cut-back\)/,
    );
    assert.ok(refused.stderr.includes(`audit folder: ${setup.auditDir}`), refused.stderr);
    assert.ok(refused.stderr.includes(`says the log reached seq ${head.seq} (boot 2)`), refused.stderr);
    assert.ok(refused.stderr.includes(`audit acknowledge-loss --config ${setup.config}`), refused.stderr);

    assert.match(
      (await verify(setup.auditDir, '--sealed')).stdout,
      /^OK: .*sealed$/m,
      'the chain alone accepts it',
    );
    const expected = await verify(setup.auditDir, '--expect-seq', head.seq, '--expect-head', head.hash);
    assert.equal(expected.code, 1);
    assert.match(
      expected.stdout,
      new RegExp(`^FAILED: cut-back .*says the log reached seq ${head.seq}`, 'm'),
    );
    const anchored = await verify(setup.auditDir, '--anchor', anchorFile);
    assert.equal(anchored.code, 1);
    assert.match(anchored.stdout, /^FAILED: cut-back .*the anchor says/m);
  });

  it('an emptied folder: serve refuses, acknowledge-loss records the loss, then serve starts and verify shows it', async () => {
    for (const n of readdirSync(setup.auditDir))
      if (n.endsWith('.jsonl')) truncateSync(join(setup.auditDir, n), 0);
    const refused = await serveExpectingRefusal(setup.config, fx.softhsm.env);
    assert.equal(refused.listening, false, 'the gateway started on an emptied log');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /\(erased\)/);
    assert.match(refused.stderr, /found: +last seq 0/);
    const empty = await verify(setup.auditDir);
    assert.equal(empty.code, 1);
    assert.match(empty.stdout, /^FAILED: empty: no audit records/m);

    const ack = await cli([
      'audit',
      'acknowledge-loss',
      '--config',
      setup.config,
      '--reason',
      'test: folder emptied',
    ]);
    assert.equal(ack.code, 0, ack.stdout + ack.stderr);
    assert.match(
      ack.stdout,
      new RegExp(`loss acknowledged in .*: erased: the anchor said seq ${head.seq} \\(boot 2\\)`),
    );
    const again = await cli(['audit', 'acknowledge-loss', '--config', setup.config]);
    assert.match(again.stdout, /nothing to acknowledge/);

    await runGateway();
    const after = await verify(setup.auditDir, '--sealed', '--anchor', anchorFile);
    assert.equal(after.code, 0, after.stdout);
    assert.match(after.stdout, /^OK: .*2 starts, 1 acknowledged loss\), .*sealed$/m);
    assert.match(
      after.stdout,
      new RegExp(
        `^loss acknowledged at seq 1 .*: erased: the anchor said seq ${head.seq} \\(boot 2\\), found seq 0; reason: "test: folder emptied"$`,
        'm',
      ),
    );
    assert.match(after.stdout, /^head: seq \d+ hash [0-9a-f]{64} boot 4$/m);
  });
});
