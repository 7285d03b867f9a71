import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '@keygate/shared';
import { systemRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { WRAP_LIMITS } from '@keygate/shared/formats';
import type { DestinationStream } from 'pino';
import { createKeyService, type KeyService } from '../../core/keys/key-service.js';
import { startLoad, waitFor } from '../../testing/load.js';
import { MemoryKeyStore } from '../../testing/memory-key-store.js';
import { softHsmAdapter } from '../../testing/pkcs11-adapter.js';
import { captureLines, createSoftHsmDir, type SoftHsmDir } from '../../testing/softhsm.js';
import { JsonFileKeyStore } from '../store/json-file-store.js';
import type { Pkcs11Hsm } from './pkcs11-hsm.js';

const PIN = '4321';

for (const workerThreads of [0, 2]) {
  describe(`PKCS#11 adapter on SoftHSM2, ${workerThreads ? `${workerThreads} worker threads` : 'libuv pool'}`, {
    timeout: 60_000,
  }, () => {
    let softhsm: SoftHsmDir;
    let hsm: Pkcs11Hsm;
    let svc: KeyService;
    const log = captureLines();

    before(() => {
      softhsm = createSoftHsmDir();
      softhsm.addToken('kg-main', PIN);
      softhsm.addToken('kg-badpin', PIN);
      softhsm.addToken('kg-repin', PIN);
      softhsm.addToken('kg-late', PIN);
      hsm = softHsmAdapter('kg-main', PIN, log.stream, {
        sessions: 4,
        workerThreads,
        backoffInitialMs: 10,
        recoveryBackoffMaxMs: 1000,
      });
      svc = createKeyService({
        hsm,
        store: new MemoryKeyStore(),
        clock: systemClock,
        random: systemRandom,
        rewrapOnUnwrap: true,
      });
    });

    /** A second adapter in this process, on another token, with quick recovery rounds. */
    const sideHsm = (tokenLabel: string, destination: DestinationStream) =>
      softHsmAdapter(tokenLabel, PIN, destination, {
        workerThreads: Math.min(workerThreads, 1),
        backoffInitialMs: 10,
        recoveryBackoffMaxMs: 200,
      });

    after(async () => {
      await hsm?.close();
      softhsm?.cleanup();
    });

    it('is ready after start and logged in once', () => {
      assert.equal(hsm.status().ready, true);
      assert.equal(log.lines.filter((l) => l.msg === 'pkcs11 login').length, 1);
      assert.ok(!JSON.stringify(log.lines).includes(PIN));
    });

    it('wraps and unwraps in the HSM; rotation keeps old versions; destroy removes every object', async () => {
      const key = await svc.create({ instance: 'inst-a', name: 'crk' });
      const w = await svc.wrap({ instance: 'inst-a', keyId: key.id, aad: ['ns/secret'] });
      const rotated = await svc.rotate('inst-a', key.id);
      const labels = softhsm.listObjectLabels('kg-main', PIN);
      for (const v of rotated.versions)
        assert.ok(labels.includes(`keygate:inst-a:${key.id}:${v.id}`), labels.join());
      const u = await svc.unwrap({
        instance: 'inst-a',
        keyId: key.id,
        ciphertext: w.ciphertext,
        aad: ['ns/secret'],
      });
      assert.deepEqual(u.plaintext, w.generated);
      assert.equal(u.rewrapped?.keyVersionId, rotated.versions[1]?.id);
      await assert.rejects(
        svc.unwrap({ instance: 'inst-a', keyId: key.id, ciphertext: w.ciphertext, aad: ['other'] }),
        (e: unknown) => isKeygateError(e) && e.code === 'UNPROCESSABLE_CIPHERTEXT_ERR',
      );
      await svc.destroy('inst-a', key.id);
      const after = softhsm.listObjectLabels('kg-main', PIN);
      assert.ok(!after.some((l) => l.includes(key.id)), after.join());
      await assert.rejects(
        svc.unwrap({ instance: 'inst-a', keyId: key.id, ciphertext: w.ciphertext, aad: ['ns/secret'] }),
        (e: unknown) => isKeygateError(e) && e.code === 'KEY_DELETED_ERR',
      );
    });

    it('uses IVs from C_GenerateRandom when asked (gcmIv token-random; not IV generation in the module)', async () => {
      const other = softHsmAdapter('kg-main', PIN, undefined, {
        sessions: 1,
        workerThreads: Math.min(workerThreads, 1),
        gcmIv: { mode: 'token-random', bytes: 12 },
        random: () => Buffer.alloc(0),
      });
      const ref = { instance: 'i', crkId: 'k', versionId: 'v1' };
      await other.generateKey(ref);
      const sealed = await other.encrypt(ref, Buffer.alloc(32, 1), Buffer.from('aad'));
      assert.equal(sealed.iv.length, 12);
      assert.deepEqual(await other.decrypt(ref, sealed, Buffer.from('aad')), Buffer.alloc(32, 1));
      await other.destroyKey(ref);
      // The module stays initialised: `hsm` still uses it.
      await other.close();
      assert.equal(hsm.status().ready, true);
    });

    it('answers 10,000 random and mutated blobs with 4xx codes only', async () => {
      const key = await svc.create({ instance: 'inst-f', name: 'fuzz' });
      const good = (await svc.wrap({ instance: 'inst-f', keyId: key.id, aad: [] })).ciphertext;
      const codes = new Map<string, number>();
      const blob = (i: number): Buffer => {
        if (i % 3 === 0) return systemRandom(1 + (i % 200));
        const b = Buffer.from(good);
        if (i % 3 === 1) {
          const pos = i % b.length;
          b[pos] = (b[pos] ?? 0) ^ (1 + (i % 255));
          return b;
        }
        return i % 2 === 0 ? b.subarray(0, i % b.length) : Buffer.concat([b, systemRandom(1 + (i % 5000))]);
      };
      for (let start = 0; start < 10_000; start += 200) {
        await Promise.all(
          Array.from({ length: 200 }, async (_, j) => {
            try {
              await svc.unwrap({ instance: 'inst-f', keyId: key.id, ciphertext: blob(start + j), aad: [] });
              codes.set('ok', (codes.get('ok') ?? 0) + 1);
            } catch (e) {
              const code = isKeygateError(e) ? e.code : 'NOT_KEYGATE';
              codes.set(code, (codes.get(code) ?? 0) + 1);
            }
          }),
        );
      }
      assert.deepEqual([...codes.keys()], ['UNPROCESSABLE_CIPHERTEXT_ERR'], JSON.stringify([...codes]));
      assert.ok(WRAP_LIMITS.maxPlaintextBytes > 0);
      assert.equal(hsm.status().ready, true);
    });

    it('recovers when every session is closed under it, without a restart', async () => {
      const key = await svc.create({ instance: 'inst-s', name: 'crk' });
      const w = await svc.wrap({ instance: 'inst-s', keyId: key.id, aad: [] });
      hsm.token.lib.C_CloseAllSessions(hsm.token.slot);
      const u = await svc.unwrap({ instance: 'inst-s', keyId: key.id, ciphertext: w.ciphertext, aad: [] });
      assert.deepEqual(u.plaintext, w.generated);
      await Promise.all(
        Array.from({ length: 8 }, () => svc.wrap({ instance: 'inst-s', keyId: key.id, aad: [] })),
      );
      assert.equal(hsm.status().ready, true);
      assert.ok(log.lines.some((l) => l.msg === 'pkcs11 session lost; reopening'));
    });

    it('tries a wrong PIN once, then reports the token unusable', async () => {
      const bad = captureLines();
      const badHsm = softHsmAdapter('kg-badpin', '0000', bad.stream, { workerThreads });
      const st = badHsm.status();
      assert.equal(st.ready, false);
      assert.match(st.reasons.join(), /CKR_PIN_INCORRECT/);
      for (let i = 0; i < 3; i++) {
        await assert.rejects(
          badHsm.encrypt({ instance: 'i', crkId: 'k', versionId: 'v' }, Buffer.alloc(1), Buffer.alloc(0)),
          (e: unknown) => isKeygateError(e) && e.code === 'HSM_PIN_INCORRECT',
        );
      }
      assert.equal(bad.lines.filter((l) => l.msg === 'pkcs11 login').length, 1);
      assert.ok(!JSON.stringify(bad.lines).includes('0000'));
      await badHsm.close();
    });

    it('replaces a worker thread that died; its operations fail cleanly, later ones succeed', {
      skip: workerThreads === 0,
    }, async () => {
      const lanes = hsm.lanes;
      assert.ok(lanes);
      const ref = { instance: 'inst-w', crkId: 'k', versionId: 'v' };
      await hsm.generateKey(ref);
      const sealed = await hsm.encrypt(ref, Buffer.alloc(32, 7), Buffer.from('a'));
      const [victim] = lanes.workers;
      assert.ok(victim);
      // The thread exits on its own, as after an uncaught error, before it reads the batch it is
      // sent next: those calls fail with HSM_UNAVAILABLE, none hangs. (Not terminate(): stopping a
      // thread between two pkcs11js calls crashes the process, see worker-lanes.ts.)
      victim.postMessage({ stop: true });
      const results = await Promise.allSettled(
        Array.from({ length: 40 }, () => hsm.decrypt(ref, sealed, Buffer.from('a'))),
      );
      for (const r of results) {
        if (r.status === 'fulfilled') assert.deepEqual(r.value, Buffer.alloc(32, 7));
        else assert.ok(isKeygateError(r.reason) && r.reason.code === 'HSM_UNAVAILABLE', String(r.reason));
      }
      assert.ok(results.some((r) => r.status === 'fulfilled'));
      assert.ok(log.lines.some((l) => l.msg === 'pkcs11 worker exited; replacing it'));
      // The replacement comes after respawnMs (1 s); then every lane serves again.
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(lanes.workers.length, workerThreads);
      const again = await Promise.all(
        Array.from({ length: 20 }, () => hsm.decrypt(ref, sealed, Buffer.from('a'))),
      );
      for (const b of again) assert.deepEqual(b, Buffer.alloc(32, 7));
      assert.equal(hsm.status().ready, true);
      await hsm.destroyKey(ref);
    });

    it('a token folder gone for 2 s under load: 503s only, never KEY_DELETED_ERR; the same instance serves again', async () => {
      const instance = `inst-glitch-${workerThreads}`;
      const key = await svc.create({ instance, name: 'glitch' });
      const old = await svc.wrap({ instance, keyId: key.id, aad: ['old'] });
      const from = log.lines.length;
      const load = startLoad(async () => {
        try {
          const w = await svc.wrap({ instance, keyId: key.id, aad: ['x'] });
          const u = await svc.unwrap({ instance, keyId: key.id, ciphertext: w.ciphertext, aad: ['x'] });
          return u.plaintext.equals(w.generated ?? Buffer.alloc(0)) ? 'ok' : 'WRONG_PLAINTEXT';
        } catch (e) {
          return isKeygateError(e) ? e.code : String(e);
        }
      }, 8);
      let restoredAt = 0;
      try {
        await waitFor(() => (load.counts.get('ok') ?? 0) >= 20, 'load running');
        const restore = softhsm.hideToken('kg-main');
        const hiddenAt = performance.now();
        try {
          await waitFor(() => !hsm.status().ready, 'not ready while the token folder is gone');
          const st = hsm.status();
          assert.match(st.reasons.join(), /not found on token "kg-main"/);
          assert.ok((st.recovery?.missingCount ?? 0) >= 1);
          // The fault lasts 2 s, whatever the load does meanwhile.
          await waitFor(() => performance.now() - hiddenAt >= 2000, 'two seconds');
        } finally {
          restore();
          restoredAt = performance.now();
        }
        await waitFor(() => load.firstOkStartedAfter(restoredAt) !== undefined, 'a success after restore');
        await waitFor(() => hsm.status().ready, 'ready again');
      } finally {
        await load.stop();
      }
      const firstOk = load.firstOkStartedAfter(restoredAt) ?? Number.NaN;
      console.log(
        `token folder glitch (${workerThreads} worker threads): first success ${Math.round(firstOk - restoredAt)} ms after restore; outcomes ${JSON.stringify([...load.counts])}`,
      );
      assert.equal(load.counts.get('KEY_DELETED_ERR'), undefined, JSON.stringify([...load.counts]));
      const codes = [...load.counts.keys()].sort();
      for (const c of codes) assert.ok(['HSM_KEY_OBJECT_MISSING', 'HSM_UNAVAILABLE', 'ok'].includes(c), c);
      assert.ok(codes.includes('HSM_KEY_OBJECT_MISSING'), 'the fault was seen');
      // Old blobs unwrap and new wraps work on the same instance, with no restart.
      const u = await svc.unwrap({ instance, keyId: key.id, ciphertext: old.ciphertext, aad: ['old'] });
      assert.deepEqual(u.plaintext, old.generated);
      const st = hsm.status();
      assert.deepEqual(st.reasons, []);
      assert.equal(st.recovery?.missingCount, 0);
      assert.ok(st.recovery?.steps.some((s) => s.step === 'reinit' && s.outcome === 'recovered'));
      const lines = log.lines.slice(from);
      assert.equal(lines.filter((l) => l.msg === 'pkcs11 recovery started').length, 1);
      assert.equal(lines.filter((l) => l.msg === 'pkcs11 recovery ended').length, 1);
    });

    it('an object deleted outside keygate: 503 for that key, others work, ready with a warning, no re-init loop', async () => {
      const instance = `inst-lost-${workerThreads}`;
      const lost = await svc.create({ instance, name: 'lost' });
      const fine = await svc.create({ instance, name: 'fine' });
      const blob = await svc.wrap({ instance, keyId: lost.id, aad: [] });
      const from = log.lines.length;
      softhsm.deleteObject('kg-main', PIN, `keygate:${instance}:${lost.id}:${blob.keyVersionId}`);
      const code = (p: Promise<unknown>) =>
        p.then(
          () => 'ok',
          (e: unknown) => (isKeygateError(e) ? e.code : String(e)),
        );
      const lostOp = () =>
        code(svc.unwrap({ instance, keyId: lost.id, ciphertext: blob.ciphertext, aad: [] }));
      const fineOp = () => code(svc.wrap({ instance, keyId: fine.id, aad: [] }));
      assert.equal(await lostOp(), 'HSM_KEY_OBJECT_MISSING');
      // Other keys keep working; one tenant's lost object does not take the gateway out.
      await waitFor(async () => {
        await fineOp();
        const st = hsm.status();
        return st.ready && st.reasons.some((r) => r.includes(lost.id) && r.includes('other keys work'));
      }, 'ready with a warning');
      const reinits = () =>
        (hsm.status().recovery?.steps ?? [])
          .filter((x) => x.step === 'reinit')
          .reduce((n, x) => n + x.count, 0);
      const before = { reinit: reinits(), attempt: hsm.status().recovery?.attempt ?? 0 };
      // Three more rounds while the other keys work: they look again, never re-initialise.
      await waitFor(async () => {
        assert.equal(await fineOp(), 'ok');
        assert.equal(await lostOp(), 'HSM_KEY_OBJECT_MISSING');
        return (hsm.status().recovery?.attempt ?? 0) >= before.attempt + 3;
      }, 'three more recovery rounds');
      assert.equal(reinits(), before.reinit);
      assert.equal(hsm.status().ready, true);
      // Destroying the key (the store says so now) ends the episode.
      await svc.destroy(instance, lost.id);
      assert.deepEqual(hsm.status().reasons, []);
      assert.equal(hsm.status().recovery?.missingCount, 0);
      assert.equal(await lostOp(), 'KEY_DELETED_ERR');
      const lines = log.lines.slice(from);
      assert.equal(lines.filter((l) => l.msg === 'pkcs11 recovery started').length, 1);
      assert.equal(lines.filter((l) => l.msg === 'pkcs11 recovery ended').length, 1);
    });

    it('a destroy seen late by another store answers KEY_DELETED_ERR and starts no recovery', async () => {
      // Two gateways on one store file: B's cached copy still says active when A destroys the key.
      const file = join(softhsm.dir, `keys-${workerThreads}.json`);
      const storeA = new JsonFileKeyStore(file, { refreshMs: 60_000, createIfMissing: true });
      const storeB = new JsonFileKeyStore(file, { refreshMs: 60_000 });
      await storeA.open();
      await storeB.open();
      const a = createKeyService({ hsm, store: storeA, clock: systemClock, random: systemRandom });
      const b = createKeyService({ hsm, store: storeB, clock: systemClock, random: systemRandom });
      const key = await a.create({ instance: 'inst-race', name: 'crk' });
      const w = await a.wrap({ instance: 'inst-race', keyId: key.id, aad: [] });
      await b.unwrap({ instance: 'inst-race', keyId: key.id, ciphertext: w.ciphertext, aad: [] });
      const from = log.lines.length;
      await a.destroy('inst-race', key.id);
      await assert.rejects(
        b.unwrap({ instance: 'inst-race', keyId: key.id, ciphertext: w.ciphertext, aad: [] }),
        (e: unknown) => isKeygateError(e) && e.code === 'KEY_DELETED_ERR',
      );
      const st = hsm.status();
      assert.equal(st.ready, true);
      assert.equal(st.recovery?.missingCount, 0);
      assert.ok(!log.lines.slice(from).some((l) => l.msg === 'pkcs11 recovery started'));
    });

    it('a PIN changed while the token was away is tried once at re-initialisation, never again', async () => {
      const lines = captureLines();
      const other = sideHsm('kg-repin', lines.stream);
      try {
        const s2 = createKeyService({
          hsm: other,
          store: new MemoryKeyStore(),
          clock: systemClock,
          random: systemRandom,
        });
        const key = await s2.create({ instance: 'inst-pin', name: 'crk' });
        const wrapOnce = async () => {
          try {
            await s2.wrap({ instance: 'inst-pin', keyId: key.id, aad: [] });
            return 'ok';
          } catch (e) {
            return isKeygateError(e) ? e.code : String(e);
          }
        };
        assert.equal(await wrapOnce(), 'ok');
        // The operator changes the PIN; this process stays logged in with the old one.
        softhsm.changePin('kg-repin', PIN, '9876');
        const logins = () => lines.lines.filter((l) => l.msg === 'pkcs11 login').length;
        assert.equal(logins(), 1);
        const restore = softhsm.hideToken('kg-repin');
        try {
          await waitFor(async () => (await wrapOnce()) === 'HSM_KEY_OBJECT_MISSING', 'the object missing');
          await waitFor(() => !other.status().ready, 'not ready');
        } finally {
          restore();
        }
        // Re-initialised, the module needs a login again: the old PIN is refused, once.
        await waitFor(() => other.token.unusable !== undefined, 'the login refused');
        await waitFor(
          () => lines.lines.some((l) => l.msg === 'pkcs11 recovery stopped: login refused'),
          'recovery stopped',
        );
        assert.equal(other.status().recovery?.nextTryInMs, undefined, 'no round scheduled');
        for (let i = 0; i < 5; i++) assert.equal(await wrapOnce(), 'HSM_PIN_INCORRECT');
        assert.equal(logins(), 2);
        assert.equal(
          lines.lines.filter((l) => l.msg === 'pkcs11 login refused; token marked unusable').length,
          1,
        );
        assert.match(other.status().reasons.join(), /CKR_PIN_INCORRECT/);
        assert.match(other.status().reasons.join(), /stopped: login refused/);
        assert.ok(!JSON.stringify(lines.lines).includes('9876'));
      } finally {
        await other.close();
      }
      // The suite's own token logs in again after the process-wide re-initialisation.
      const ref = { instance: 'inst-after', crkId: 'k', versionId: `v-${workerThreads}` };
      await hsm.generateKey(ref);
      const sealed = await hsm.encrypt(ref, Buffer.alloc(32, 3), Buffer.from('a'));
      assert.deepEqual(await hsm.decrypt(ref, sealed, Buffer.from('a')), Buffer.alloc(32, 3));
      await hsm.destroyKey(ref);
    });

    it('a token folder away at start is found once it is back, without a restart', async () => {
      const lines = captureLines();
      const restore = softhsm.hideToken('kg-late');
      const late = sideHsm('kg-late', lines.stream);
      try {
        try {
          assert.equal(late.status().ready, false);
          // Opens keep failing (the module does not see the folder), so recovery re-initialises it.
          const failedOpens = () =>
            lines.lines.filter((l) => l.msg === 'pkcs11 session open failed; backing off').length;
          await waitFor(() => failedOpens() >= 3, 'three failed opens');
        } finally {
          restore();
        }
        await waitFor(() => late.status().ready, 'ready once the token folder is back');
        const ref = { instance: 'i', crkId: 'late', versionId: 'v' };
        await late.generateKey(ref);
        const sealed = await late.encrypt(ref, Buffer.alloc(32, 5), Buffer.from('a'));
        assert.deepEqual(await late.decrypt(ref, sealed, Buffer.from('a')), Buffer.alloc(32, 5));
        await late.destroyKey(ref);
        assert.equal(lines.lines.filter((l) => l.msg === 'pkcs11 login').length, 1);
        assert.equal(lines.lines.filter((l) => l.msg === 'pkcs11 recovery started').length, 1);
      } finally {
        await late.close();
      }
      // The suite's own token reopens its sessions after the process-wide re-initialisations.
      const ref = { instance: 'inst-after-late', crkId: 'k', versionId: `v-${workerThreads}` };
      await hsm.generateKey(ref);
      assert.equal((await hsm.encrypt(ref, Buffer.alloc(8), Buffer.alloc(0))).iv.length, 12);
      await hsm.destroyKey(ref);
    });

    it('keeps 64 concurrent mixed operations apart: each caller gets its own result', async () => {
      const ref = { instance: 'inst-c', crkId: 'k', versionId: `v-${workerThreads}` };
      await hsm.generateKey(ref);
      const results = await Promise.all(
        Array.from({ length: 64 }, async (_, i) => {
          const plain = Buffer.alloc(32, i);
          const aad = Buffer.from(`aad-${i}`);
          const sealed = await hsm.encrypt(ref, plain, aad);
          const back = await hsm.decrypt(ref, sealed, aad);
          return back.equals(plain) && sealed.iv.length === 12 && sealed.tag.length === 16;
        }),
      );
      assert.deepEqual(results, Array(64).fill(true));
      await hsm.destroyKey(ref);
    });
  });
}
