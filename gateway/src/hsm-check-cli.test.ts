import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  BAD_PIN_TOKEN,
  createGatewayFixture,
  type GatewayFixture,
  INSTANCE,
} from './testing/gateway-fixture.js';
import { type Interposer, startInterposer } from './testing/pkcs11-interposer.js';
import { findSoftHsmModule } from './testing/softhsm.js';

/**
 * `keygate-gateway hsm check` as an operator runs it (a real CLI process), with `hsm.module`
 * pointing at the PKCS#11 interposer in front of SoftHSM2: the Luna-FIPS and CloudHSM GCM IV
 * emulations, a profile that does not fit, stray key objects, and a failover (objects hidden).
 * docs/hsm.md, "hsm check".
 */

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));
const KEY_RUNTIME = new URL('./key-runtime.js', import.meta.url).href;
const CONFIG = new URL('./config.js', import.meta.url).href;
const GATEWAY_DIR = fileURLToPath(new URL('../', import.meta.url));
const module = findSoftHsmModule();

interface Ran {
  /** The exit code, or -1 when a signal ended the process (`signal`). */
  readonly code: number;
  readonly signal?: string;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI (or a node script) to its end; never rejects on a non-zero exit or a signal. */
function runNode(args: readonly string[], env: Record<string, string>): Promise<Ran> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      args,
      { env: { ...process.env, ...env }, cwd: GATEWAY_DIR, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err === null) return resolve({ code: 0, stdout, stderr });
        const { code, signal } = err as { code?: unknown; signal?: unknown };
        if (typeof code === 'number') return resolve({ code, stdout, stderr });
        if (typeof signal === 'string') return resolve({ code: -1, signal, stdout, stderr });
        reject(err);
      },
    );
  });
}

/** The last non-empty line of the output: the verdict. */
const verdict = (out: string): string => out.trimEnd().split('\n').at(-1) ?? '';

/** No JavaScript stack trace anywhere in what an operator sees. */
function assertNoStack(r: Ran): void {
  assert.doesNotMatch(`${r.stdout}\n${r.stderr}`, /^\s+at .+[(:]\d+/m, 'a stack trace was printed');
}

describe('hsm check through the PKCS#11 interposer (emulated Luna-FIPS and CloudHSM)', {
  skip: module ? false : 'SoftHSM2 is not installed (apt-get install softhsm2)',
}, () => {
  let fx: GatewayFixture;
  let ip: Interposer;
  let env: Record<string, string>;
  const config = (profile: string) =>
    fx.writeConfig(`check-${profile}`, { module: ip.modulePath, hsmExtra: `profile: ${profile}` });
  const check = (profile: string) => runNode([CLI, 'hsm', 'check', '--config', config(profile)], env);
  const labels = () => fx.softhsm.listObjectLabels(fx.tokenLabel, fx.pin);

  before(async () => {
    fx = await createGatewayFixture();
    env = fx.softhsm.env;
    ip = startInterposer({ target: module ?? '', control: { gcm: 'luna-fips', gcmIvBits: 'strict' } });
  });

  after(() => {
    ip?.close();
    fx?.softhsm.cleanup();
  });

  it('profile luna-fips on the Luna-FIPS emulation: OK, token-appended 16 works, exit 0', async () => {
    ip.set({ gcm: 'luna-fips', gcmIvBits: 'strict' });
    const r = await check('luna-fips');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /"wrapUnwrap":"ok"/);
    assert.match(r.stdout, /^GCM IV host: does not work \(refused \(CKR_MECHANISM_PARAM_INVALID\)\)$/m);
    assert.match(r.stdout, /^GCM IV token-appended \(12-byte IV\): does not work/m);
    assert.match(
      r.stdout,
      /^GCM IV token-appended \(16-byte IV\): works \(the module generated a 16-byte IV and appended it\)$/m,
    );
    assert.equal(
      verdict(r.stdout),
      'OK: profile luna-fips, gcmIv token-appended (16-byte IV) works on this token',
    );
    // The emulation really made the IVs: the interposer logged its GCM work.
    assert.ok(ip.events('gcm-init').length > 0);
    assertNoStack(r);
    // Neither the round trip's key nor the probe's scratch key is left on the token.
    assert.deepEqual(labels(), []);
  });

  it('profile softhsm2 (host IVs) on the Luna-FIPS emulation: MISMATCH naming what works and the profile, exit 1', async () => {
    ip.set({ gcm: 'luna-fips', gcmIvBits: 'strict' });
    const r = await check('softhsm2');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    // The gateway's own wrap path failed, said on one line with the refusal; the probe still ran.
    assert.match(
      r.stdout,
      /"wrapUnwrap":"FAILED","backend":"pkcs11","code":"HSM_ERROR","ckr":"CKR_MECHANISM_PARAM_INVALID","method":"C_EncryptInit"/,
    );
    assert.match(r.stdout, /^GCM IV token-appended \(16-byte IV\): works/m);
    assert.equal(
      verdict(r.stdout),
      'MISMATCH: gcmIv host (profile softhsm2) does not work on this token: refused (CKR_MECHANISM_PARAM_INVALID); ' +
        'what works: token-appended (16-byte IV): set hsm.profile: luna-fips (or hsm.gcmIv: token-appended with hsm.gcmIvBytes: 16)',
    );
    assert.doesNotMatch(r.stderr, /HSM_ERROR/, 'the refusal is in the report, not an error exit');
    assertNoStack(r);
    assert.deepEqual(labels(), []);
  });

  it('profile cloudhsm on the CloudHSM emulation: OK with token-appended 12; luna-fips there is a MISMATCH pointing at cloudhsm', async () => {
    ip.set({ gcm: 'cloudhsm', gcmIvBits: 'strict' });
    const r = await check('cloudhsm');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /^key template \(portable\): accepted$/m);
    assert.match(r.stdout, /^GCM IV token-appended \(12-byte IV\): works/m);
    assert.match(r.stdout, /^GCM IV token-appended \(16-byte IV\): does not work/m);
    assert.equal(
      verdict(r.stdout),
      'OK: profile cloudhsm, gcmIv token-appended (12-byte IV) works on this token',
    );
    assertNoStack(r);

    const wrong = await check('luna-fips');
    assert.equal(wrong.code, 1, wrong.stdout + wrong.stderr);
    assert.match(
      verdict(wrong.stdout),
      /^MISMATCH: gcmIv token-appended \(16-byte IV\) \(profile luna-fips\) does not work on this token: .*what works: token-appended \(12-byte IV\): set hsm\.profile: cloudhsm \(or hsm\.gcmIv: token-appended with hsm\.gcmIvBytes: 12\)$/,
    );
    assertNoStack(wrong);
    assert.deepEqual(labels(), []);
  });

  it('lists a key object left by a crash between key generation and the store update; the verdict stays OK, exit 0', async () => {
    ip.set({ gcm: 'luna-fips', gcmIvBits: 'strict' });
    const cfg = config('luna-fips');
    // A process that generates a root-key object the way `keys create` does (keygate's label,
    // template and CKA_ID, through the interposer) and is killed before it writes the store.
    const crkId = '6f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
    const versionId = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
    const script = `
      import { createLogger } from '@keygate/shared/log';
      import { loadGatewayConfig } from ${JSON.stringify(CONFIG)};
      import { buildKeyRuntime } from ${JSON.stringify(KEY_RUNTIME)};
      const [file, instance, crkId, versionId] = process.argv.slice(1);
      const config = loadGatewayConfig(file);
      const logger = createLogger({ level: 'error', name: 'crash', destination: process.stderr });
      const rt = buildKeyRuntime(config, { configFile: file, logger });
      await rt.hsm.generateKey({ instance, crkId, versionId });
      console.log('generated');
      process.kill(process.pid, 'SIGKILL');
    `;
    const crashed = await runNode(
      ['--input-type=module', '-e', script, cfg, INSTANCE, crkId, versionId],
      env,
    );
    assert.equal(crashed.signal, 'SIGKILL', crashed.stderr);
    assert.match(crashed.stdout, /generated/);
    const label = `keygate:${INSTANCE}:${crkId}:${versionId}`;
    assert.deepEqual(labels(), [label]);

    const r = await check('luna-fips');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `^stray key object ${label}: no such key version in the store \\(left by a crash between key generation and the store update, or not keygate's\\): check, then delete it with pkcs11-tool$`,
        'm',
      ),
    );
    assert.equal(
      verdict(r.stdout),
      'OK: profile luna-fips, gcmIv token-appended (16-byte IV) works on this token (1 stray key object(s): see above)',
    );
    fx.softhsm.deleteObject(fx.tokenLabel, fx.pin, label);
    const clean = await check('luna-fips');
    assert.equal(clean.code, 0);
    assert.doesNotMatch(clean.stdout, /stray/);
  });

  it('an unfinished destroy (objects hidden by a failover during keys destroy) is listed, and keys destroy again deletes it', async () => {
    ip.set({ gcm: 'luna-fips', gcmIvBits: 'strict' });
    const cfg = config('luna-fips');
    const keys = (...args: string[]) =>
      runNode([CLI, 'keys', ...args, '--config', cfg, '--instance', INSTANCE], env);
    const created = await keys('create', '--name', 'doomed');
    assert.equal(created.code, 0, created.stderr);
    const id = (JSON.parse(created.stdout) as { id: string }).id;
    // During the destroy, C_FindObjects finds nothing: the store says destroyed, the object stays.
    ip.set({ gcm: 'luna-fips', gcmIvBits: 'strict', hide: true });
    const destroyed = await keys('destroy', '--id', id);
    assert.equal(destroyed.code, 0, destroyed.stderr);
    ip.set({ gcm: 'luna-fips', gcmIvBits: 'strict' });
    const [left] = labels();
    assert.match(left ?? '', new RegExp(`^keygate:${INSTANCE}:${id}:`));

    const r = await check('luna-fips');
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `^stray key object ${left}: its key is destroyed \\(an unfinished destroy: run keys destroy again\\)$`,
        'm',
      ),
    );
    assert.match(verdict(r.stdout), /^OK: .*\(1 stray key object\(s\): see above\)$/);

    // What the line says to do works, and is not reported as a failure.
    const again = await keys('destroy', '--id', id);
    assert.equal(again.code, 0, again.stderr);
    assert.match(
      again.stderr,
      new RegExp(`key ${id} was already destroyed; its HSM objects were looked for and deleted again`),
    );
    assert.equal((JSON.parse(again.stdout) as { state: number }).state, 5);
    assert.deepEqual(labels(), []);
    const clean = await check('luna-fips');
    assert.equal(clean.code, 0);
    assert.doesNotMatch(clean.stdout, /stray/);
  });

  it('objects hidden while hsm check runs (a failover): an INCOMPLETE verdict, exit 1, no stack, nothing left on the token', async () => {
    // A stray that the hidden search cannot see: the check must not claim there is none.
    const created = await runNode(
      [CLI, 'keys', 'create', '--config', config('luna-fips'), '--instance', INSTANCE, '--name', 'kept'],
      env,
    );
    assert.equal(created.code, 0, created.stderr);
    ip.set({ gcm: 'luna-fips', gcmIvBits: 'strict', hide: true });
    const r = await check('luna-fips');
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /"wrapUnwrap":"skipped","why":"object search does not work"/);
    assert.match(
      r.stdout,
      /^object search: does not work \(C_FindObjects found nothing for the scratch key just generated\); stray key objects not checked$/m,
    );
    assert.equal(
      verdict(r.stdout),
      'INCOMPLETE: gcmIv token-appended (16-byte IV) (profile luna-fips) works, but object search does not ' +
        '(C_FindObjects found nothing for the scratch key just generated: an HA failover, or a member without the object?): ' +
        'the gateway cannot find its root keys now and stray objects were not checked; run hsm check again when the token answers searches',
    );
    assert.ok(ip.events('hide').length > 0, 'the interposer hid objects');
    assertNoStack(r);
    ip.set({ gcm: 'luna-fips', gcmIvBits: 'strict' });
    // Only the live key's object: no scratch key of the check was left behind.
    const left = labels();
    assert.equal(left.length, 1, left.join(', '));
    assert.doesNotMatch(left[0] ?? '', /_keygate-check/);
    const back = await check('luna-fips');
    assert.equal(back.code, 0, back.stdout + back.stderr);
    assert.match(verdict(back.stdout), /^OK: profile luna-fips/);
  });

  it('a wrong PIN through the interposer: FAILED naming the reason, exit 1, the PIN not printed, no stack', async () => {
    ip.set({ gcm: 'luna-fips', gcmIvBits: 'strict' });
    const cfg = fx.writeConfig('check-bad-pin', {
      module: ip.modulePath,
      hsmExtra: 'profile: luna-fips',
      tokenLabel: BAD_PIN_TOKEN,
    });
    const r = await runNode([CLI, 'hsm', 'check', '--config', cfg], env);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(verdict(r.stdout), /^FAILED: the HSM is not ready \(.*PIN.*\)$/i);
    assert.doesNotMatch(r.stdout, /wrapUnwrap/);
    assert.ok(!`${r.stdout}${r.stderr}`.includes(fx.pin), 'the PIN was printed');
    assertNoStack(r);
  });
});
