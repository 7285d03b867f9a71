import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FakeKeyProtectServer } from './testing/fake-key-protect-server.js';
import { hasOpenssl, makeTestPki, type TestPki } from './testing/test-pki.js';

/** The package bin, as the image runs it (the bundle; scripts/run-tests.mjs builds it when stale). */
const CLI = fileURLToPath(new URL('../bin/keygate-shim.js', import.meta.url));
const API_KEY = 'cli-test-key';

/** Runs the CLI without blocking this process (the Key Protect fake lives in it). */
function run(
  args: string[],
  input?: string | Buffer,
): Promise<{ status: number | null; stdout: Buffer; stderr: Buffer }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('close', (status) =>
      resolve({ status, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }),
    );
    child.stdin.end(input ?? '');
  });
}

describe('keygate-shim CLI (separate processes)', { skip: !hasOpenssl() }, () => {
  let pki: TestPki;
  let kp: FakeKeyProtectServer;
  let serve: ChildProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'kg-cli-'));
  const socket = join(dir, 'run', 'kms.sock');
  const config = join(dir, 'kmsplugin-config.yaml');

  before(async () => {
    pki = makeTestPki();
    kp = await FakeKeyProtectServer.start({ pki, apiKey: API_KEY, instanceId: 'inst-1', crkId: 'crk-1' });
    writeFileSync(
      config,
      `SERVER_CONFIG:
  UNIX_SOCKET_PATH: "${socket}"
  TOKEN_URL: "${kp.tokenUrl}"
  TOKEN_URL_CA_FILE: "${pki.caFile}"
  API_KEY: "${API_KEY}"
  HEALTHZ_PORT: "0"
KP_CONFIG:
  CRK_ID: "crk-1"
  URL: "${kp.url}"
  KP_CA_FILE: "${pki.caFile}"
  INSTANCE_ID: "inst-1"
KEYGATE:
  CLIENT_CERT_FILE: "${pki.clientCertFile}"
  CLIENT_KEY_FILE: "${pki.clientKeyFile}"
`,
    );
  });
  after(async () => {
    serve?.kill('SIGKILL');
    await kp.stop();
  });

  it('stops on a config mistake with a message naming the file and key', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'SERVER_CONFIG:\n  NUM_LEN_BYTES: "x"\nKP_CONFIG: {}\n');
    const r = await run(['serve', '--config', bad]);
    assert.notEqual(r.status, 0);
    const err = r.stderr.toString();
    assert.match(err, new RegExp(bad.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    assert.match(err, /SERVER_CONFIG\.NUM_LEN_BYTES/);
    assert.match(err, /KP_CONFIG\.CRK_ID/);
  });

  it('check reaches the token URL and the gateway', async () => {
    const r = await run(['check', '--config', config]);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.match(r.stdout.toString(), /wrap and unwrap ok/);
    assert.match(r.stdout.toString(), /^key_id keygate\/inst-1\/crk-1\/\S+$/m);
  });

  it('serves, round-trips through encrypt/decrypt, refuses a second server, and removes the socket on SIGTERM', async () => {
    serve = spawn(process.execPath, [CLI, 'serve', '--config', config], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    serve.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const end = Date.now() + 15_000;
    while (!out.includes('keygate shim started') && Date.now() < end)
      await new Promise((r) => setTimeout(r, 50));
    assert.match(out, /"msg":"keygate shim started"/);
    // The two lines operators of the ICP plug-in check for, in keygate's JSON log format.
    assert.match(
      out,
      /^\{"level":"info","ts":"[^"]+","svc":"keygate-shim".*"msg":"KMS provider server started"\}$/m,
    );
    assert.match(
      out,
      /^\{"level":"info","ts":"[^"]+","svc":"keygate-shim".*"msg":"SIGTERM handler started"\}$/m,
    );
    const enc = await run(['encrypt', '--socket', socket], 'hello kms');
    assert.equal(enc.status, 0, enc.stderr.toString());
    const dec = await run(['decrypt', '--socket', socket], enc.stdout);
    assert.equal(dec.stdout.toString(), 'hello kms');
    const v1 = await run(['encrypt', '--socket', socket, '--v1'], 'v1 data');
    assert.equal(
      (await run(['decrypt', '--socket', socket, '--v1'], v1.stdout)).stdout.toString(),
      'v1 data',
    );
    const second = await run(['serve', '--config', config]);
    assert.notEqual(second.status, 0);
    assert.match(second.stdout.toString(), /SOCKET_IN_USE/);
    const exited = new Promise<number | null>((r) => serve?.once('exit', (code) => r(code)));
    serve.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.match(out, /signal received/);
    assert.equal(existsSync(socket), false);
    assert.doesNotMatch(out, new RegExp(API_KEY));
    serve = undefined;
  });

  /**
   * `serve` with its health port held by another listener and RESTART_DELAY_IN_SECONDS `delay`.
   * `exit()` waits for the process (SIGKILL after `killAfterMs`, which fails the test's checks).
   */
  async function serveWithHealthPortTaken(name: string, delay: number) {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    const sock = join(dir, name, 'kms.sock');
    const cfg = join(dir, `${name}.yaml`);
    writeFileSync(
      cfg,
      readFileSync(config, 'utf8')
        .replace(
          `UNIX_SOCKET_PATH: "${socket}"`,
          `UNIX_SOCKET_PATH: "${sock}"\n  RESTART_DELAY_IN_SECONDS: ${delay}`,
        )
        .replace('HEALTHZ_PORT: "0"', `HEALTHZ_PORT: ${port}`),
    );
    const child = spawn(process.execPath, [CLI, 'serve', '--config', cfg], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const log = { out: '' };
    child.stdout.on('data', (d: Buffer) => {
      log.out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      log.out += d.toString();
    });
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    return {
      child,
      sock,
      log,
      async exit(killAfterMs: number): Promise<number | null> {
        const killer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        const code = await exited;
        clearTimeout(killer);
        await new Promise<void>((r) => holder.close(() => r()));
        return code;
      },
    };
  }

  it('exits non-zero with HEALTH_PORT_IN_USE when another process holds the health port, leaving no socket behind', async (t) => {
    // The socket folder is watched (inotify), not polled: a socket that exists for a millisecond is seen.
    mkdirSync(join(dir, 'port-taken'), { recursive: true });
    const created: string[] = [];
    const watcher = watch(join(dir, 'port-taken'), (_event, file) => {
      if (file === 'kms.sock') created.push(file);
    });
    const s = await serveWithHealthPortTaken('port-taken', 1);
    t.after(() => {
      watcher.close();
      s.child.kill('SIGKILL');
    });
    // Bounded: three attempts one second apart; a shim that stays up is killed at 60 s and fails.
    const code = await s.exit(60_000);
    watcher.close();
    const out = s.log.out;
    assert.equal(code, 1, out);
    assert.match(out, /"code":"HEALTH_PORT_IN_USE"/);
    assert.match(out, /"msg":"cannot start"/);
    assert.equal((out.match(/"msg":"start failed"/g) ?? []).length, 2, 'two retries, then the exit');
    assert.equal(existsSync(s.sock), false, 'the socket file was left behind');
    // A shim that cannot start never shows kube-apiserver a socket, not even for one attempt.
    assert.deepEqual(created, [], 'a socket was served by a shim that could not start');
  });

  it('leaves the wait between start attempts at once on SIGTERM', async (t) => {
    const s = await serveWithHealthPortTaken('sigterm-wait', 600);
    t.after(() => s.child.kill('SIGKILL'));
    const end = Date.now() + 30_000;
    while (!s.log.out.includes('"msg":"start failed"') && Date.now() < end)
      await new Promise((r) => setTimeout(r, 50));
    assert.match(s.log.out, /"code":"HEALTH_PORT_IN_USE"/);
    s.child.kill('SIGTERM');
    // A 600 s restart delay: only leaving the wait on the signal ends the process before the kill.
    assert.equal(await s.exit(30_000), 0, s.log.out);
    assert.equal(existsSync(s.sock), false);
  });
});
