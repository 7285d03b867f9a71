import assert from 'node:assert/strict';
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  call,
  createGatewayFixture,
  errorCode,
  type GatewayFixture,
  INSTANCE,
} from './testing/gateway-fixture.js';
import { SOFTHSM_MODULE } from './testing/softhsm.js';

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));
const run = promisify(execFile);

interface Served {
  readonly child: ChildProcess;
  readonly url: string;
}

/** Starts `keygate-gateway serve` and waits for its "gateway listening" log line. */
async function serve(config: string, env: Record<string, string>): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let buf = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`gateway exited early (${code})`)));
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      buf += chunk;
      const m = /"msg":"gateway listening"/.test(buf) ? /"url":"(https:[^"]+)"/.exec(buf) : null;
      if (m?.[1]) resolve(m[1]);
    });
  });
  child.stdout?.resume();
  return { child, url };
}

describe('keygate-gateway CLI and two gateway processes on one token and one store', () => {
  let fx: GatewayFixture;
  let config: string;
  const procs: ChildProcess[] = [];

  before(async () => {
    fx = await createGatewayFixture();
    config = fx.writeConfig('shared');
  });

  after(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    fx?.softhsm.cleanup();
  });

  it('hsm check finds the token and round-trips; keys create/list/get work on the host', async () => {
    const check = await run(process.execPath, [CLI, 'hsm', 'check', '--config', config], {
      env: { ...process.env, ...fx.softhsm.env },
    });
    assert.match(check.stdout, /"wrapUnwrap":"ok"/);
    // The probe: what the token is and does, which IV conventions work, and the verdict.
    assert.match(check.stdout, /mechanism CKM_AES_GCM: key sizes 16\.\.32/);
    assert.match(check.stdout, /GCM IV host: works/);
    assert.match(check.stdout, /GCM IV token-appended \(16-byte IV\): does not work/);
    assert.match(check.stdout, /^OK: profile generic, gcmIv host works on this token$/m);
    assert.doesNotMatch(check.stdout, /stray/);
    // An object under a keygate label that the store does not know (a crash between key
    // generation and the store update) is reported.
    execFileSync(
      'pkcs11-tool',
      [
        '--module',
        SOFTHSM_MODULE,
        '--token-label',
        fx.tokenLabel,
        '--login',
        '--pin',
        fx.pin,
        '--keygen',
        '--key-type',
        'AES:32',
        '--label',
        `keygate:${INSTANCE}:0b5c4a52-6a0e-4a8e-9d1b-3f2e1c0d9a87:orphan`,
        '--id',
        '01',
      ],
      { env: { ...process.env, ...fx.softhsm.env }, stdio: 'ignore' },
    );
    const again = await run(process.execPath, [CLI, 'hsm', 'check', '--config', config], {
      env: { ...process.env, ...fx.softhsm.env },
    });
    assert.match(
      again.stdout,
      /stray key object keygate:inst-a:0b5c4a52-6a0e-4a8e-9d1b-3f2e1c0d9a87:orphan: no such key version in the store/,
    );
    const created = await run(
      process.execPath,
      [CLI, 'keys', 'create', '--config', config, '--instance', INSTANCE, '--name', 'cli-key'],
      {
        env: { ...process.env, ...fx.softhsm.env },
      },
    );
    const key = JSON.parse(created.stdout) as { id: string; state: number };
    assert.equal(key.state, 1);
    const listed = await run(
      process.execPath,
      [CLI, 'keys', 'list', '--config', config, '--instance', INSTANCE],
      {
        env: { ...process.env, ...fx.softhsm.env },
      },
    );
    assert.ok((JSON.parse(listed.stdout) as { id: string }[]).some((k) => k.id === key.id));
    await assert.rejects(
      run(
        process.execPath,
        [CLI, 'keys', 'get', '--config', config, '--instance', INSTANCE, '--id', 'missing'],
        {
          env: { ...process.env, ...fx.softhsm.env },
        },
      ),
      /KEY_NOT_FOUND_ERR/,
    );
    // Instance ids are the shared pattern's: `a:b` is one, `__proto__` is not; key ids have no `:`.
    const env = { ...process.env, ...fx.softhsm.env };
    const colon = await run(
      process.execPath,
      [CLI, 'keys', 'list', '--config', config, '--instance', 'a:b'],
      {
        env,
      },
    );
    assert.deepEqual(JSON.parse(colon.stdout), []);
    for (const [flag, value, rule] of [
      ['--instance', '__proto__', /--instance: expected an instance id/],
      ['--id', 'a:b', /--id: expected a key id/],
    ] as const) {
      await assert.rejects(
        run(
          process.execPath,
          [CLI, 'keys', 'get', '--config', config, '--instance', INSTANCE, '--id', 'k1', flag, value],
          { env },
        ),
        (e: { code?: number; stderr?: string }) => e.code === 2 && rule.test(e.stderr ?? ''),
      );
    }
  });

  it('rejects a config with an unknown key, naming file and key', async () => {
    const bad = fx.writeConfig('unknown-key', { extra: 'surprise: 1\n' });
    await assert.rejects(
      run(process.execPath, [CLI, 'hsm', 'check', '--config', bad]),
      (e: { stderr?: string }) => /unknown-key\.yaml[\s\S]*surprise/.test(e.stderr ?? ''),
    );
  });

  it('serves the same keys from two processes, rotation included, then stops on SIGTERM', async () => {
    const a = await serve(config, fx.softhsm.env);
    procs.push(a.child);
    const b = await serve(config, fx.softhsm.env);
    procs.push(b.child);
    const ca = fx.ca.certPem;
    const act = (url: string, keyId: string, action: string, body: unknown, client = fx.clients.allowed) =>
      call(url, 'POST', `/api/v2/keys/${keyId}/actions/${action}`, { client, ca, instance: INSTANCE, body });

    // A key created through A is usable through B at once (a store miss re-reads the file).
    const created = await call(a.url, 'POST', '/api/v2/keys', {
      client: fx.clients.admin,
      ca,
      instance: INSTANCE,
      body: {
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'shared-key' }],
      },
    });
    assert.equal(created.status, 201, created.text);
    const keyId = created.json<{ resources: { id: string }[] }>().resources[0]?.id ?? '';
    const w = await act(b.url, keyId, 'wrap', { aad: ['x'] });
    assert.equal(w.status, 200, w.text);
    const first = w.json<{ ciphertext: string; plaintext: string; keyVersion: { id: string } }>();
    assert.equal(
      (await act(a.url, keyId, 'unwrap', { ciphertext: first.ciphertext, aad: ['x'] })).json().plaintext,
      first.plaintext,
    );

    // Rotated through B: A wraps under the new version within 5 s, and unwraps old blobs re-wrapped.
    assert.equal((await act(b.url, keyId, 'rotate', {}, fx.clients.admin)).status, 204);
    let newVersion = first.keyVersion.id;
    const deadline = Date.now() + 5000;
    while (newVersion === first.keyVersion.id && Date.now() < deadline) {
      const r = await act(a.url, keyId, 'wrap', { aad: ['x'] });
      assert.equal(r.status, 200, r.text);
      newVersion = r.json<{ keyVersion: { id: string } }>().keyVersion.id;
      if (newVersion === first.keyVersion.id) await new Promise((res) => setTimeout(res, 200));
    }
    assert.notEqual(newVersion, first.keyVersion.id);
    const plain = await act(a.url, keyId, 'unwrap', { ciphertext: first.ciphertext, aad: ['x'] });
    assert.equal(plain.json().plaintext, first.plaintext);
    assert.equal(plain.json().rewrappedKeyVersion, undefined); // keys.rewrapOnUnwrap is off by default
    const u = await act(a.url, keyId, 'rewrap', { ciphertext: first.ciphertext, aad: ['x'] });
    assert.deepEqual(u.json().rewrappedKeyVersion, { id: newVersion });
    // A blob wrapped under the new version by A unwraps through B.
    const ub = await act(b.url, keyId, 'unwrap', { ciphertext: u.json().ciphertext, aad: ['x'] });
    assert.equal(ub.json().plaintext, first.plaintext);

    // Destroyed through A: B answers 410 (its store copy is re-read on the unknown state within 1 s).
    assert.equal(
      (
        await call(a.url, 'DELETE', `/api/v2/keys/${keyId}`, {
          client: fx.clients.admin,
          ca,
          instance: INSTANCE,
        })
      ).status,
      204,
    );
    await new Promise((res) => setTimeout(res, 1100));
    const gone = await act(b.url, keyId, 'unwrap', { ciphertext: first.ciphertext, aad: ['x'] });
    assert.equal(gone.status, 410);
    assert.equal(errorCode(gone), 'KEY_DELETED_ERR');

    for (const p of [a.child, b.child]) {
      p.kill('SIGTERM');
      const [code] = await once(p, 'exit');
      assert.equal(code, 0);
    }
  });
});
