import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Secret } from '@keygate/shared/config';
import { systemRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { WRAP_LIMITS } from '@keygate/shared/formats';
import { createLogger } from '@keygate/shared/log';
import { systemClock } from '../../core/clock.js';
import { createKeyService, type KeyService } from '../../core/keys/key-service.js';
import { MemoryKeyStore } from '../../core/keys/memory-key-store.js';
import { captureLines, createSoftHsmDir, SOFTHSM_MODULE, type SoftHsmDir } from '../../testing/softhsm.js';
import { Pkcs11Hsm } from './pkcs11-hsm.js';

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
      hsm = new Pkcs11Hsm({
        modulePath: SOFTHSM_MODULE,
        tokenLabel: 'kg-main',
        pin: new Secret(PIN, 'test'),
        sessions: 4,
        workerThreads,
        ivSource: 'host',
        random: systemRandom,
        logger: createLogger({ level: 'debug', destination: log.stream }),
        backoffInitialMs: 10,
      });
      svc = createKeyService({ hsm, store: new MemoryKeyStore(), clock: systemClock, random: systemRandom });
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

    it('uses HSM-generated IVs when asked', async () => {
      const other = new Pkcs11Hsm({
        modulePath: SOFTHSM_MODULE,
        tokenLabel: 'kg-main',
        pin: new Secret(PIN, 'test'),
        sessions: 1,
        workerThreads: Math.min(workerThreads, 1),
        ivSource: 'hsm',
        random: () => Buffer.alloc(0),
        logger: createLogger({ level: 'silent' }),
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
      const badHsm = new Pkcs11Hsm({
        modulePath: SOFTHSM_MODULE,
        tokenLabel: 'kg-badpin',
        pin: new Secret('0000', 'test'),
        sessions: 2,
        workerThreads,
        ivSource: 'host',
        random: systemRandom,
        logger: createLogger({ level: 'debug', destination: bad.stream }),
      });
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
