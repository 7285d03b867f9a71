import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '@keygate/shared';
import { Secret } from '@keygate/shared/config';
import { systemRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { createLogger } from '@keygate/shared/log';
import pkcs11js from 'pkcs11js';
import { type GcmIvSetting, HOST_IV } from '../adapters/pkcs11/gcm-mechanism.js';
import { Pkcs11Hsm } from '../adapters/pkcs11/pkcs11-hsm.js';
import { createKeyService } from '../core/keys/key-service.js';
import { waitFor } from './load.js';
import { MemoryKeyStore } from './memory-key-store.js';
import { softHsmAdapter } from './pkcs11-adapter.js';
import {
  buildInterposer,
  buildInterposerProbe,
  INTERPOSER_GCM_IV_BYTES,
  type Interposer,
  interposerControlText,
  startInterposer,
} from './pkcs11-interposer.js';
import { captureLines, createSoftHsmDir, SOFTHSM_MODULE, type SoftHsmDir } from './softhsm.js';

const PIN = '2468';
const TAG = 16;

/** The pkcs11js error name (`CKR_...`) of a rejected call. */
const ckr = (name: string) => (e: unknown) => e instanceof Error && e.message === name;

function gcmParams(iv: Buffer, aad = Buffer.alloc(0)): pkcs11js.Mechanism {
  const parameter: pkcs11js.AesGCM = {
    type: pkcs11js.CK_PARAMS_AES_GCM,
    iv,
    aad,
    ivBits: iv.length * 8,
    tagBits: TAG * 8,
  };
  return { mechanism: pkcs11js.CKM_AES_GCM, parameter };
}

describe('PKCS#11 interposer, raw pkcs11js over SoftHSM2', { timeout: 60_000 }, () => {
  let softhsm: SoftHsmDir;
  let ip: Interposer;
  let lib: pkcs11js.PKCS11;
  let slot: Buffer;
  let session: Buffer;
  let key: Buffer;
  const sessions: Buffer[] = [];

  before(() => {
    softhsm = createSoftHsmDir();
    softhsm.addToken('ip-raw', PIN);
    ip = startInterposer({ target: SOFTHSM_MODULE });
    lib = new pkcs11js.PKCS11();
    lib.load(ip.modulePath);
    lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    const found = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === 'ip-raw');
    assert.ok(found, 'token visible through the interposer');
    slot = found;
    session = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    lib.C_Login(session, pkcs11js.CKU_USER, PIN);
    key = lib.C_GenerateKey(session, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
      { type: pkcs11js.CKA_TOKEN, value: true },
      { type: pkcs11js.CKA_LABEL, value: 'ip-raw-key' },
      { type: pkcs11js.CKA_SENSITIVE, value: true },
      { type: pkcs11js.CKA_EXTRACTABLE, value: false },
      { type: pkcs11js.CKA_ENCRYPT, value: true },
      { type: pkcs11js.CKA_DECRYPT, value: true },
    ]);
  });

  after(() => {
    ip?.clear();
    try {
      lib?.C_Finalize();
      lib?.close();
    } finally {
      ip?.close();
      softhsm?.cleanup();
    }
  });

  const encrypt = (iv: Buffer, data: Buffer, outLen: number, s = session) => {
    lib.C_EncryptInit(s, gcmParams(iv), key);
    return lib.C_Encrypt(s, data, Buffer.alloc(outLen));
  };
  const decrypt = (iv: Buffer, input: Buffer) => {
    lib.C_DecryptInit(session, gcmParams(iv), key);
    return lib.C_Decrypt(session, input, Buffer.alloc(input.length));
  };
  const findByLabel = (label: string) => {
    lib.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_LABEL, value: label }]);
    try {
      return lib.C_FindObjects(session, 10);
    } finally {
      lib.C_FindObjectsFinal(session);
    }
  };

  it('forwards: the host IV mode encrypts and decrypts as SoftHSM2 does', () => {
    const data = Buffer.from('forwarded plaintext');
    const iv = systemRandom(12);
    const sealed = encrypt(iv, data, data.length + TAG);
    assert.equal(sealed.length, data.length + TAG);
    assert.deepEqual(decrypt(iv, sealed), data);
    assert.equal(ip.events('fail').length, 0);
    assert.equal(ip.events('control-error').length, 0);
  });

  for (const mode of ['luna-fips', 'cloudhsm'] as const) {
    const ivLen = INTERPOSER_GCM_IV_BYTES[mode];
    it(`${mode}: refuses a caller IV, generates a ${ivLen}-byte IV and appends it`, async () => {
      ip.set({ gcm: mode });
      const data = Buffer.from(`sealed in ${mode} mode`);
      const a = encrypt(Buffer.alloc(ivLen), data, data.length + TAG + ivLen);
      assert.equal(a.length, data.length + TAG + ivLen, 'ciphertext || tag || IV');
      const b = encrypt(Buffer.alloc(ivLen), data, data.length + TAG + ivLen);
      const ivA = a.subarray(-ivLen);
      const ivB = b.subarray(-ivLen);
      assert.notDeepEqual(ivA, Buffer.alloc(ivLen), 'a generated IV, not the zero buffer');
      assert.notDeepEqual(ivA, ivB, 'a fresh IV per encryption');
      // Decrypt always forwards: the caller gives the appended IV back and strips it from the input.
      assert.deepEqual(decrypt(ivA, a.subarray(0, -ivLen)), data);
      assert.deepEqual(decrypt(ivB, b.subarray(0, -ivLen)), data);
      // The same in the async form pkcs11js runs on the libuv pool.
      lib.C_EncryptInit(session, gcmParams(Buffer.alloc(ivLen)), key);
      const out = Buffer.alloc(data.length + TAG + ivLen);
      const n = await lib.C_EncryptAsync(session, data, out);
      assert.equal(n.length, data.length + TAG + ivLen);
      assert.deepEqual(decrypt(n.subarray(-ivLen), n.subarray(0, -ivLen)), data);

      // A buffer without room for the IV: CKR_BUFFER_TOO_SMALL, and the operation goes on.
      lib.C_EncryptInit(session, gcmParams(Buffer.alloc(ivLen)), key);
      assert.throws(
        () => lib.C_Encrypt(session, data, Buffer.alloc(data.length + TAG)),
        ckr('CKR_BUFFER_TOO_SMALL'),
      );
      const again = Buffer.alloc(data.length + TAG + ivLen);
      const sealed = lib.C_Encrypt(session, data, again);
      assert.equal(sealed.length, again.length);
      assert.deepEqual(decrypt(sealed.subarray(-ivLen), sealed.subarray(0, -ivLen)), data);

      // Caller IVs are refused: a non-zero one, and a zero one of the other length.
      assert.throws(
        () => lib.C_EncryptInit(session, gcmParams(systemRandom(ivLen)), key),
        ckr('CKR_MECHANISM_PARAM_INVALID'),
      );
      const other = ivLen === 16 ? 12 : 16;
      assert.throws(
        () => lib.C_EncryptInit(session, gcmParams(Buffer.alloc(other)), key),
        ckr('CKR_MECHANISM_PARAM_INVALID'),
      );
      assert.equal(ip.events('gcm-refused').length >= 2, true);

      // Back to host mode: a caller IV works again and nothing is appended.
      ip.clear();
      const iv = systemRandom(12);
      const host = encrypt(iv, data, data.length + TAG + ivLen);
      assert.equal(host.length, data.length + TAG);
      assert.deepEqual(decrypt(iv, host), data);
    });
  }

  it('gcmIvBits strict: refuses GCM parameters whose ulIvBits does not match the IV', () => {
    ip.set({ gcmIvBits: 'strict' });
    const v240 = (iv: Buffer, ivBits: number): pkcs11js.Mechanism => ({
      mechanism: pkcs11js.CKM_AES_GCM,
      parameter: {
        type: pkcs11js.CK_PARAMS_GCM,
        iv,
        aad: Buffer.alloc(0),
        ivBits,
        tagBits: 128,
      } as pkcs11js.AesGCM,
    });
    const iv = systemRandom(12);
    lib.C_EncryptInit(session, v240(iv, 96), key);
    const sealed = lib.C_Encrypt(session, Buffer.from('bits'), Buffer.alloc(64));
    lib.C_DecryptInit(session, v240(iv, 96), key);
    assert.equal(lib.C_Decrypt(session, sealed, Buffer.alloc(64)).toString(), 'bits');
    assert.throws(() => lib.C_EncryptInit(session, v240(iv, 64), key), ckr('CKR_MECHANISM_PARAM_INVALID'));
    assert.throws(() => lib.C_DecryptInit(session, v240(iv, 128), key), ckr('CKR_MECHANISM_PARAM_INVALID'));
    ip.clear();
    lib.C_EncryptInit(session, v240(iv, 64), key); // ignored again (SoftHSM2 does not check it)
    lib.C_Encrypt(session, Buffer.from('bits'), Buffer.alloc(64));
  });

  it('returns a CKR for the next N calls, then forwards again', () => {
    ip.set({ fail: [{ fn: 'C_GenerateRandom', rv: 'CKR_DEVICE_ERROR', count: 2 }] });
    assert.throws(() => lib.C_GenerateRandom(session, Buffer.alloc(8)), ckr('CKR_DEVICE_ERROR'));
    assert.throws(() => lib.C_GenerateRandom(session, Buffer.alloc(8)), ckr('CKR_DEVICE_ERROR'));
    assert.equal(lib.C_GenerateRandom(session, Buffer.alloc(8)).length, 8);
    assert.equal(ip.events('fail').length, 2);
    // skip: the third call fails, only it.
    ip.set({ fail: [{ fn: 'C_GenerateRandom', rv: 'CKR_DEVICE_ERROR', skip: 2, count: 1 }] });
    const outcomes = [0, 1, 2, 3].map(() => {
      try {
        lib.C_GenerateRandom(session, Buffer.alloc(8));
        return 'ok';
      } catch (e) {
        return (e as Error).message;
      }
    });
    assert.deepEqual(outcomes, ['ok', 'ok', 'CKR_DEVICE_ERROR', 'ok']);
    ip.clear();
  });

  it('fails a crypto call after the real call, so the operation is over as after a real failure', () => {
    ip.set({ fail: [{ fn: 'C_Encrypt', rv: 'CKR_DEVICE_ERROR', count: 1 }] });
    const iv = systemRandom(12);
    lib.C_EncryptInit(session, gcmParams(iv), key);
    assert.throws(() => lib.C_Encrypt(session, Buffer.from('x'), Buffer.alloc(64)), ckr('CKR_DEVICE_ERROR'));
    // No CKR_OPERATION_ACTIVE: the session is usable for the next operation.
    assert.equal(encrypt(iv, Buffer.from('y'), 64).length, 1 + TAG);
    // `when: before` leaves the operation active, as the module never saw the call.
    ip.set({ fail: [{ fn: 'C_Encrypt', rv: 'CKR_DEVICE_ERROR', count: 1, when: 'before' }] });
    lib.C_EncryptInit(session, gcmParams(iv), key);
    assert.throws(() => lib.C_Encrypt(session, Buffer.from('x'), Buffer.alloc(64)), ckr('CKR_DEVICE_ERROR'));
    assert.equal(lib.C_Encrypt(session, Buffer.from('x'), Buffer.alloc(64)).length, 1 + TAG);
    ip.clear();
  });

  it('returns a CKR for a time window on every function (`*`), then forwards again', async () => {
    ip.set({ fail: [{ fn: '*', rv: 'CKR_DEVICE_REMOVED', forMs: 400 }] });
    assert.throws(() => lib.C_GetTokenInfo(slot), ckr('CKR_DEVICE_REMOVED'));
    assert.throws(() => lib.C_GenerateRandom(session, Buffer.alloc(4)), ckr('CKR_DEVICE_REMOVED'));
    await sleep(450);
    assert.equal(lib.C_GetTokenInfo(slot).label.trim(), 'ip-raw');
    ip.clear();
  });

  it('adds latency to a function, sync and async', async () => {
    ip.set({ delay: [{ fn: ['C_GenerateRandom', 'C_Decrypt'], ms: 150 }] });
    let t = performance.now();
    lib.C_GenerateRandom(session, Buffer.alloc(4));
    assert.ok(performance.now() - t >= 145, 'sync call delayed');
    const iv = systemRandom(12);
    const sealed = encrypt(iv, Buffer.from('slow'), 64);
    lib.C_DecryptInit(session, gcmParams(iv), key);
    t = performance.now();
    const out = await lib.C_DecryptAsync(session, sealed, Buffer.alloc(sealed.length));
    assert.ok(performance.now() - t >= 145, 'async call delayed');
    assert.equal(out.toString(), 'slow');
    const delays = ip.events('delay').length;
    ip.clear();
    lib.C_GenerateRandom(session, Buffer.alloc(4));
    assert.equal(ip.events('delay').length, delays, 'no delay after clear');
  });

  it('hangs a call until the control changes, or until max_ms', async () => {
    ip.set({ hang: [{ fn: 'C_Encrypt' }] });
    const iv = systemRandom(12);
    lib.C_EncryptInit(session, gcmParams(iv), key);
    let settled = false;
    const pending = lib.C_EncryptAsync(session, Buffer.from('held'), Buffer.alloc(64)).finally(() => {
      settled = true;
    });
    await sleep(300);
    assert.equal(settled, false, 'still hung');
    ip.clear();
    const out = await pending;
    assert.equal(out.length, 4 + TAG);
    assert.match(ip.events('hang').at(-1)?.detail ?? '', /released/);

    ip.set({ hang: [{ fn: 'C_GenerateRandom', maxMs: 200, count: 1 }] });
    const t = performance.now();
    lib.C_GenerateRandom(session, Buffer.alloc(4));
    assert.ok(performance.now() - t >= 195, 'held until max_ms');
    assert.match(ip.events('hang').at(-1)?.detail ?? '', /timeout/);
    ip.clear();
  });

  it('hides objects from C_FindObjects for a while (a failover)', async () => {
    assert.equal(findByLabel('ip-raw-key').length, 1);
    ip.set({ hide: { forMs: 400 } });
    assert.equal(findByLabel('ip-raw-key').length, 0);
    // The handle still works: only the search is affected.
    assert.equal(encrypt(systemRandom(12), Buffer.from('z'), 64).length, 1 + TAG);
    await sleep(450);
    assert.equal(findByLabel('ip-raw-key').length, 1);
    ip.set({ hide: { count: 1 } });
    assert.equal(findByLabel('ip-raw-key').length, 0);
    assert.equal(findByLabel('ip-raw-key').length, 1);
    ip.clear();
  });

  it('counts exactly under concurrent async calls on the libuv pool', async () => {
    for (let i = 0; i < 8; i++) sessions.push(lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION));
    ip.set({ gcm: 'luna-fips', fail: [{ fn: 'C_Encrypt', rv: 'CKR_GENERAL_ERROR', count: 5 }] });
    const data = Buffer.from('parallel');
    const outcomes: string[] = [];
    for (let round = 0; round < 5; round++) {
      const results = await Promise.allSettled(
        sessions.map(async (s) => {
          lib.C_EncryptInit(s, gcmParams(Buffer.alloc(16)), key);
          const out = await lib.C_EncryptAsync(s, data, Buffer.alloc(data.length + TAG + 16));
          assert.deepEqual(decrypt(out.subarray(-16), out.subarray(0, -16)), data);
          return 'ok';
        }),
      );
      for (const r of results)
        outcomes.push(r.status === 'fulfilled' ? r.value : (r.reason as Error).message);
    }
    assert.equal(outcomes.filter((o) => o === 'CKR_GENERAL_ERROR').length, 5);
    assert.equal(outcomes.filter((o) => o === 'ok').length, 35);
    assert.equal(ip.events('fail').length >= 5, true);
    ip.clear();
    for (const s of sessions.splice(0)) lib.C_CloseSession(s);
  });

  it('worker threads calling at once, while the control flips: exact counts, every ciphertext decrypts', async () => {
    // Each worker loads the same module (one copy, one state), opens its own session and loops:
    // encrypt with a zero 16-byte IV, then decrypt with the appended IV (luna-fips) or the zero IV
    // (host: nothing appended). The main thread flips the GCM mode meanwhile; whichever mode a
    // C_EncryptInit saw, its C_Encrypt must match it.
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      const pkcs11js = require(workerData.pkcs11js);
      const lib = new pkcs11js.PKCS11();
      lib.load(workerData.module);
      try { lib.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK }); } catch (e) {
        if (e.message !== 'CKR_CRYPTOKI_ALREADY_INITIALIZED') throw e;
      }
      const s = lib.C_OpenSession(Buffer.from(workerData.slot), pkcs11js.CKF_SERIAL_SESSION);
      const key = Buffer.from(workerData.key);
      const gcm = (iv) => ({ mechanism: pkcs11js.CKM_AES_GCM,
        parameter: { type: pkcs11js.CK_PARAMS_AES_GCM, iv, aad: Buffer.alloc(0), ivBits: iv.length * 8, tagBits: 128 } });
      const counts = { host: 0, appended: 0, random: 0, wrong: 0, failed: 0 };
      for (let i = 0; i < workerData.rounds; i++) {
        const data = Buffer.from('w' + workerData.id + ':' + i);
        try {
          lib.C_GenerateRandom(s, Buffer.alloc(4));
          counts.random++;
        } catch (e) {
          if (e.message !== 'CKR_FUNCTION_FAILED') throw e;
          counts.failed++;
        }
        lib.C_EncryptInit(s, gcm(Buffer.alloc(16)), key);
        const out = lib.C_Encrypt(s, data, Buffer.alloc(data.length + 32));
        const appended = out.length === data.length + 32;
        const iv = appended ? out.subarray(-16) : Buffer.alloc(16);
        lib.C_DecryptInit(s, gcm(Buffer.from(iv)), key);
        const input = appended ? out.subarray(0, -16) : out;
        const plain = lib.C_Decrypt(s, input, Buffer.alloc(input.length));
        if (!plain.equals(data)) counts.wrong++;
        else if (appended) counts.appended++;
        else counts.host++;
      }
      lib.C_CloseSession(s);
      parentPort.postMessage(counts);
    `;
    const { Worker } = await import('node:worker_threads');
    const { createRequire } = await import('node:module');
    const pkcs11jsPath = createRequire(import.meta.url).resolve('pkcs11js');
    const [keyHandle] = findByLabel('ip-raw-key');
    assert.ok(keyHandle);
    const rounds = 100;
    const run = async (during?: (done: () => boolean) => Promise<void>) => {
      const workers = [0, 1, 2, 3].map(
        (id) =>
          new Worker(code, {
            eval: true,
            workerData: { id, rounds, module: ip.modulePath, pkcs11js: pkcs11jsPath, slot, key: keyHandle },
          }),
      );
      let finished = false;
      const results = Promise.all(
        workers.map(
          (w) =>
            new Promise<Record<string, number>>((resolve, reject) => {
              w.once('message', resolve);
              w.once('error', reject);
            }),
        ),
      ).finally(() => {
        finished = true;
      });
      await during?.(() => finished);
      const counts = await results;
      return (k: string) => counts.reduce((a, c) => a + (c[k] ?? 0), 0);
    };
    const randomFails = () =>
      ip.events('fail').filter((e) => e.detail.startsWith('C_GenerateRandom rv=0x6 ')).length;

    // 1. One control for the whole run: exactly `count` calls fail among 4 x 100 concurrent ones.
    ip.set({ gcm: 'luna-fips', fail: [{ fn: 'C_GenerateRandom', rv: 'CKR_FUNCTION_FAILED', count: 7 }] });
    let sum = await run();
    assert.equal(sum('failed'), 7);
    assert.equal(sum('random'), 4 * rounds - 7);
    assert.equal(randomFails(), 7, 'one event per injected failure');
    assert.equal(sum('wrong'), 0);
    assert.equal(sum('appended'), 4 * rounds);

    // 2. The GCM mode flips while the workers run: every ciphertext matches the mode its
    //    C_EncryptInit saw, so each decrypts.
    let flips = 0;
    sum = await run(async (finished) => {
      while (!finished() && flips < 200) {
        ip.set({ gcm: flips % 2 === 0 ? 'host' : 'luna-fips' });
        flips++;
        await sleep(2);
      }
    });
    assert.equal(sum('wrong'), 0, 'every ciphertext decrypted to its plaintext');
    assert.equal(sum('host') + sum('appended'), 4 * rounds);
    assert.ok(flips > 1);
    ip.clear();
  });

  it('reports malformed control lines and ignores them', async () => {
    const before = ip.events('control-error').length;
    const { writeFileSync } = await import('node:fs');
    writeFileSync(ip.controlPath, 'fail C_Nothing 0x30\nbogus\ngcm luna-fips\n');
    lib.C_GenerateRandom(session, Buffer.alloc(4));
    assert.equal(ip.events('control-error').length - before, 2);
    ip.clear();
    assert.match(
      interposerControlText({ fail: [{ fn: 'C_Login', rv: 'CKR_PIN_INCORRECT' }] }),
      /fail C_Login 0xa0/,
    );
    assert.throws(() => interposerControlText({ fail: [{ fn: 'C_Login', rv: 'CKR_NOPE' }] }));
  });
});

describe('PKCS#11 interposer from another process, configured by the environment', {
  timeout: 60_000,
}, () => {
  let softhsm: SoftHsmDir;
  let ip: Interposer;
  before(() => {
    softhsm = createSoftHsmDir();
    softhsm.addToken('ip-probe', PIN);
    ip = startInterposer({ target: SOFTHSM_MODULE });
  });
  after(() => {
    ip?.close();
    softhsm?.cleanup();
  });

  /** Runs probe.c on the cached module (no .conf beside it: only ip.env says where things are). */
  const probe = (ivBytes: number): Record<string, string> => {
    let out: string;
    try {
      out = execFileSync(buildInterposerProbe(), [buildInterposer(), 'ip-probe', PIN, String(ivBytes)], {
        env: { ...process.env, ...softhsm.env, ...ip.env },
        encoding: 'utf8',
      });
    } catch (e) {
      out = String((e as { stdout?: string }).stdout ?? ''); // exit 1 after printing error=...
    }
    return Object.fromEntries(
      out
        .trim()
        .split('\n')
        .map((l) => l.split('=') as [string, string]),
    );
  };

  it('host mode: size query and multi-part forward unchanged', () => {
    ip.set({ gcm: 'host' });
    assert.deepEqual(probe(0), {
      size: '37',
      len: '37',
      single: 'ok',
      final_size: '16',
      multi_len: '37',
      multi: 'ok',
    });
  });

  for (const mode of ['luna-fips', 'cloudhsm'] as const) {
    it(`${mode}: a NULL size query and C_EncryptFinal count the appended IV`, () => {
      const iv = INTERPOSER_GCM_IV_BYTES[mode];
      ip.set({ gcm: mode });
      const total = String(21 + 16 + iv); // 21 bytes of data, the tag, the IV
      assert.deepEqual(probe(iv), {
        size: total,
        len: total,
        single: 'ok',
        final_size: String(16 + iv),
        multi_len: total,
        multi: 'ok',
      });
      assert.ok(ip.events('gcm-init').length >= 2);
    });
  }

  it('a fault set by the control file reaches the other process', () => {
    ip.set({ fail: [{ fn: 'C_GetSlotList', rv: 'CKR_TOKEN_NOT_PRESENT', count: 1 }] });
    assert.match(probe(0).error ?? '', /C_GetSlotList/);
    // Counts are per process: each process that loads the module reads the control and counts anew.
    assert.match(probe(0).error ?? '', /C_GetSlotList/);
    assert.equal(ip.events('fail').at(-1)?.detail, 'C_GetSlotList rv=0xe0 before');
    ip.clear();
    assert.equal(probe(0).single, 'ok');
  });
});

for (const workerThreads of [0, 2]) {
  describe(`PKCS#11 interposer under the Pkcs11Hsm adapter, ${workerThreads ? 'worker threads' : 'libuv pool'}`, {
    timeout: 60_000,
  }, () => {
    let softhsm: SoftHsmDir;
    let ip: Interposer;
    let hsm: Pkcs11Hsm;
    const store = new MemoryKeyStore();
    const log = captureLines();
    const makeHsm = (tokenLabel = 'ip-adapter') =>
      softHsmAdapter(tokenLabel, PIN, log.stream, {
        modulePath: ip.modulePath,
        sessions: 4,
        workerThreads,
        backoffInitialMs: 10,
        backoffMaxMs: 100,
        recoveryBackoffMaxMs: 200,
      });

    before(() => {
      softhsm = createSoftHsmDir();
      softhsm.addToken('ip-adapter', PIN);
      softhsm.addToken('ip-pin', PIN); // login state is per token: a token nobody logged in to yet
      ip = startInterposer({ target: SOFTHSM_MODULE });
      hsm = makeHsm();
    });

    after(async () => {
      ip?.clear();
      await hsm?.close();
      ip?.close();
      softhsm?.cleanup();
    });

    it('forwards: create, wrap and unwrap through the interposer', async () => {
      const svc = createKeyService({ hsm, store, clock: systemClock, random: systemRandom });
      const key = await svc.create({ instance: 'ip', name: 'fwd' });
      const w = await svc.wrap({ instance: 'ip', keyId: key.id, aad: ['a'] });
      const u = await svc.unwrap({ instance: 'ip', keyId: key.id, ciphertext: w.ciphertext, aad: ['a'] });
      assert.deepEqual(u.plaintext, w.generated);
      assert.equal(ip.events('fail').length, 0);
    });

    it('a CKR_DEVICE_ERROR on C_Encrypt for 2 calls fails wraps with a keygate code, then recovers', async () => {
      const svc = createKeyService({ hsm, store, clock: systemClock, random: systemRandom });
      const key = await svc.create({ instance: 'ip', name: 'faulty' });
      ip.set({ fail: [{ fn: 'C_Encrypt', rv: 'CKR_DEVICE_ERROR', count: 2 }] });
      const codes: string[] = [];
      let wrapped: Awaited<ReturnType<typeof svc.wrap>> | undefined;
      await waitFor(async () => {
        try {
          wrapped = await svc.wrap({ instance: 'ip', keyId: key.id, aad: [] });
          return true;
        } catch (e) {
          codes.push(isKeygateError(e) ? e.code : String(e));
          return false;
        }
      }, 'a wrap after the injected failures');
      assert.equal(ip.events('fail').length, 2, 'both injections happened');
      // The adapter may retry on a fresh session by itself: at most one failed wrap per injection.
      assert.ok(codes.length <= 2, `failed wraps: ${codes.join(',')}`);
      assert.ok(JSON.stringify(log.lines).includes('CKR_DEVICE_ERROR'), 'the adapter saw the injected CKR');
      for (const c of codes) assert.equal(c, 'HSM_UNAVAILABLE');
      assert.ok(wrapped);
      const u = await svc.unwrap({ instance: 'ip', keyId: key.id, ciphertext: wrapped.ciphertext, aad: [] });
      assert.deepEqual(u.plaintext, wrapped.generated);
      assert.ok(!JSON.stringify(log.lines).includes(PIN));
      ip.clear();
    });

    it('latency on C_Decrypt shows in unwrap time', async () => {
      const svc = createKeyService({ hsm, store, clock: systemClock, random: systemRandom });
      const key = await svc.create({ instance: 'ip', name: 'slow' });
      const w = await svc.wrap({ instance: 'ip', keyId: key.id, aad: [] });
      ip.set({ delay: [{ fn: 'C_Decrypt', ms: 250 }] });
      const t = performance.now();
      await svc.unwrap({ instance: 'ip', keyId: key.id, ciphertext: w.ciphertext, aad: [] });
      assert.ok(performance.now() - t >= 245, 'unwrap waited for the delayed C_Decrypt');
      ip.clear();
    });

    it('an injected CKR_PIN_INCORRECT on C_Login is tried once, never in a loop', async () => {
      ip.set({ fail: [{ fn: 'C_Login', rv: 'CKR_PIN_INCORRECT' }] });
      const fresh = makeHsm('ip-pin');
      try {
        await sleep(1000); // the pool's backoff (10-100 ms) would have retried many times by now
        const logins = ip.events('fail').filter((e) => e.detail.startsWith('C_Login ')).length;
        assert.equal(logins, 1, 'one login attempt');
        assert.equal(fresh.status().ready, false);
        assert.ok(!JSON.stringify(log.lines).includes(PIN));
      } finally {
        ip.clear();
        await fresh.close();
      }
    });

    it('hidden objects: a fresh adapter cannot find the key during the window, and can after it', async () => {
      const svc = createKeyService({ hsm, store, clock: systemClock, random: systemRandom });
      const key = await svc.create({ instance: 'ip', name: 'hidden' });
      const w = await svc.wrap({ instance: 'ip', keyId: key.id, aad: [] });
      ip.set({ hide: { forMs: 1500 } });
      const fresh = makeHsm(); // no cached handles: it must search
      try {
        const svc2 = createKeyService({ hsm: fresh, store, clock: systemClock, random: systemRandom });
        await assert.rejects(
          svc2.unwrap({ instance: 'ip', keyId: key.id, ciphertext: w.ciphertext, aad: [] }),
          (e: unknown) => isKeygateError(e),
        );
        assert.ok(ip.events('hide').length >= 1);
        await waitFor(async () => {
          try {
            const u = await svc2.unwrap({ instance: 'ip', keyId: key.id, ciphertext: w.ciphertext, aad: [] });
            return w.generated !== undefined && Buffer.compare(u.plaintext, w.generated) === 0;
          } catch {
            return false;
          }
        }, 'the key found again after the window');
      } finally {
        ip.clear();
        await fresh.close();
      }
    });
  });
}

for (const workerThreads of [0, 2]) {
  describe(`Pkcs11Hsm gcmIv token-appended on the interposer's Luna-FIPS and CloudHSM emulation, ${
    workerThreads ? 'worker threads' : 'libuv pool'
  }`, { timeout: 60_000 }, () => {
    let softhsm: SoftHsmDir;
    let ip: Interposer;
    const store = new MemoryKeyStore();
    const log = captureLines();
    const open: Pkcs11Hsm[] = [];
    const makeService = (gcmIv: GcmIvSetting) => {
      const hsm = new Pkcs11Hsm({
        modulePath: ip.modulePath,
        tokenLabel: 'ip-appended',
        pin: new Secret(PIN, 'test'),
        sessions: 2,
        workerThreads: Math.min(workerThreads, 1),
        gcmIv,
        random: systemRandom,
        logger: createLogger({ level: 'debug', destination: log.stream }),
        backoffInitialMs: 10,
        backoffMaxMs: 100,
      });
      open.push(hsm);
      return createKeyService({ hsm, store, clock: systemClock, random: systemRandom });
    };

    before(() => {
      softhsm = createSoftHsmDir();
      softhsm.addToken('ip-appended', PIN);
      ip = startInterposer({ target: SOFTHSM_MODULE });
    });

    after(async () => {
      ip?.clear();
      for (const h of open) await h.close();
      ip?.close();
      softhsm?.cleanup();
    });

    for (const mode of ['luna-fips', 'cloudhsm'] as const) {
      const bytes = INTERPOSER_GCM_IV_BYTES[mode];
      it(`${mode}: wraps with the IV the module made (${bytes} bytes), unwraps; blobs of both modes unwrap after a switch`, async () => {
        // strict ulIvBits too: the gateway's GCM parameters must carry it (CK_PARAMS_AES_GCM_v240).
        ip.set({ gcm: mode, gcmIvBits: 'strict' });
        const appended = makeService({ mode: 'token-appended', bytes });
        const key = await appended.create({ instance: 'ip', name: `appended-${mode}` });
        const inits = ip.events('gcm-init').length;
        const w = await appended.wrap({ instance: 'ip', keyId: key.id, aad: ['x'] });
        assert.equal(ip.events('gcm-init').length, inits + 1, 'the module generated the IV');
        const u = await appended.unwrap({
          instance: 'ip',
          keyId: key.id,
          ciphertext: w.ciphertext,
          aad: ['x'],
        });
        assert.deepEqual(u.plaintext, w.generated);

        // Switch the module and the gateway to host IVs: the token-appended blob still unwraps, and
        // a host blob unwraps under the token-appended setting (decrypt never depends on it).
        ip.set({ gcmIvBits: 'strict' });
        const host = makeService(HOST_IV);
        const u2 = await host.unwrap({ instance: 'ip', keyId: key.id, ciphertext: w.ciphertext, aad: ['x'] });
        assert.deepEqual(u2.plaintext, w.generated);
        const hw = await host.wrap({ instance: 'ip', keyId: key.id, aad: ['y'] });
        ip.set({ gcm: mode, gcmIvBits: 'strict' });
        const u3 = await appended.unwrap({
          instance: 'ip',
          keyId: key.id,
          ciphertext: hw.ciphertext,
          aad: ['y'],
        });
        assert.deepEqual(u3.plaintext, hw.generated);
        assert.equal(ip.events('gcm-refused').length, 0, 'no GCM parameters refused');
        ip.clear();
      });
    }

    it('host IVs on a Luna-FIPS module: the caller IV is refused, a clean error, nothing wrapped', async () => {
      ip.set({ gcm: 'luna-fips' });
      const host = makeService(HOST_IV);
      const key = await host.create({ instance: 'ip', name: 'mismatch-host' });
      const refused = ip.events('gcm-refused').length;
      await assert.rejects(host.wrap({ instance: 'ip', keyId: key.id, aad: [] }), (e: unknown) =>
        isKeygateError(e),
      );
      assert.ok(ip.events('gcm-refused').length > refused, 'the emulated HSM refused the host IV');
      ip.clear();
    });

    it('token-appended on a module that appends nothing: HSM_ERROR, not a blob with a wrong IV', async () => {
      ip.clear();
      const appended = makeService({ mode: 'token-appended', bytes: 16 });
      const key = await appended.create({ instance: 'ip', name: 'mismatch-appended' });
      await assert.rejects(
        appended.wrap({ instance: 'ip', keyId: key.id, aad: [] }),
        (e: unknown) => isKeygateError(e) && e.code === 'HSM_ERROR',
      );
    });
  });
}

for (const workerThreads of [0, 1]) {
  describe(`Pkcs11Hsm: CKR_GENERAL_ERROR from C_Decrypt is a failing HSM unless the key still round-trips, ${
    workerThreads ? 'worker threads' : 'libuv pool'
  }`, { timeout: 60_000 }, () => {
    let softhsm: SoftHsmDir;
    let ip: Interposer;
    let hsm: Pkcs11Hsm;
    const ref = { instance: 'ip', crkId: 'ge', versionId: `ge-${workerThreads}` };
    const aad = Buffer.from('ns/secret');
    const plain = Buffer.alloc(32, 7);
    const code = (e: unknown) => (isKeygateError(e) ? e.code : String(e));

    before(async () => {
      softhsm = createSoftHsmDir();
      softhsm.addToken('ip-general', PIN);
      ip = startInterposer({ target: SOFTHSM_MODULE });
      hsm = new Pkcs11Hsm({
        modulePath: ip.modulePath,
        tokenLabel: 'ip-general',
        pin: new Secret(PIN, 'test'),
        sessions: 2,
        workerThreads,
        random: systemRandom,
        logger: createLogger({ level: 'silent' }),
        backoffInitialMs: 10,
        backoffMaxMs: 100,
      });
      await hsm.generateKey(ref);
    });

    after(async () => {
      ip?.clear();
      await hsm?.close();
      ip?.close();
      softhsm?.cleanup();
    });

    it('a glitch on the decrypt and on its retry: the blob still decrypts (it is not "a bad ciphertext")', async () => {
      const sealed = await hsm.encrypt(ref, plain, aad);
      ip.set({ fail: [{ fn: 'C_Decrypt', rv: 'CKR_GENERAL_ERROR', count: 2 }] });
      assert.deepEqual(await hsm.decrypt(ref, sealed, aad), plain);
      assert.equal(ip.events('fail').length >= 2, true);
      ip.clear();
    });

    it('an HSM that fails every decrypt for a while: 503 HSM_UNAVAILABLE, never 422', async () => {
      const sealed = await hsm.encrypt(ref, plain, aad);
      ip.set({ fail: [{ fn: 'C_Decrypt', rv: 'CKR_GENERAL_ERROR' }] });
      await assert.rejects(hsm.decrypt(ref, sealed, aad), (e: unknown) => code(e) === 'HSM_UNAVAILABLE');
      ip.clear();
      assert.deepEqual(await hsm.decrypt(ref, sealed, aad), plain);
    });

    it('a tampered blob on a working HSM is still 422 UNPROCESSABLE_CIPHERTEXT_ERR', async () => {
      const sealed = await hsm.encrypt(ref, plain, aad);
      const tag = Buffer.from(sealed.tag);
      tag[0] = (tag[0] ?? 0) ^ 1;
      await assert.rejects(
        hsm.decrypt(ref, { ...sealed, tag }, aad),
        (e: unknown) => code(e) === 'UNPROCESSABLE_CIPHERTEXT_ERR',
      );
      await assert.rejects(
        hsm.decrypt(ref, sealed, Buffer.from('other')),
        (e: unknown) => code(e) === 'UNPROCESSABLE_CIPHERTEXT_ERR',
      );
    });
  });
}
