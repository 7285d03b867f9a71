import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { systemClock } from '@keygate/shared';
import { Secret } from '@keygate/shared/config';
import { systemRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { createLogger } from '@keygate/shared/log';
import pkcs11js from 'pkcs11js';
import { objectLabel } from '../../core/keys/hsm.js';
import { createKeyService, type KeyService } from '../../core/keys/key-service.js';
import { MemoryKeyStore } from '../../testing/memory-key-store.js';
import { createNssSoftoken, findNssSoftokenModule } from '../../testing/nss-softoken.js';
import { startInterposer } from '../../testing/pkcs11-interposer.js';
import { captureLines, createSoftHsmDir, findSoftHsmModule } from '../../testing/softhsm.js';
import { Pkcs11Hsm } from './pkcs11-hsm.js';
import { HSM_PROFILES, type HsmProfileName } from './profiles.js';
import { formatProbe, probeToken } from './token-probe.js';

/**
 * The adapter's essential cases on every real PKCS#11 implementation CI installs: SoftHSM2 and
 * NSS softoken (docs/hsm.md, Tested implementations), and SoftHSM2 behind the interposer in its
 * Luna-FIPS and CloudHSM emulation (the module makes the GCM IV and appends it; caller IVs are
 * refused), with those profiles. The SoftHSM2-only faults (token folders hidden, objects deleted
 * by pkcs11-tool, PINs changed under a running process) stay in pkcs11-hsm.test.ts.
 */

const PIN = '4321';
const TOKENS = ['kg-main', 'kg-badpin'] as const;

interface Implementation {
  readonly name: string;
  /** The hsm.profile for it: key template and object checks (profiles.ts). */
  readonly profile: HsmProfileName;
  /** Why the suite cannot run here, or undefined. */
  readonly missing: string | undefined;
  /** Makes the tokens (user PIN `PIN`); returns what Pkcs11Hsm needs and a way to list labels. */
  setUp(): {
    modulePath: string;
    libraryParameters?: string;
    listObjectLabels(label: string): string[];
    cleanup(): void;
  };
}

/** SoftHSM2 behind the interposer emulating a module that makes GCM IVs itself (strict ulIvBits). */
const emulated = (mode: 'luna-fips' | 'cloudhsm', name: string): Implementation => ({
  name: `SoftHSM2 behind the interposer, ${name} emulation`,
  profile: mode,
  // gcc builds the interposer: npm test's preflight installs it with SoftHSM2.
  missing: findSoftHsmModule() ? undefined : 'SoftHSM2 is not installed (apt-get install softhsm2)',
  setUp() {
    const dir = createSoftHsmDir();
    for (const t of TOKENS) dir.addToken(t, PIN);
    const ip = startInterposer({
      target: findSoftHsmModule() ?? '',
      control: { gcm: mode, gcmIvBits: 'strict' },
    });
    return {
      modulePath: ip.modulePath,
      listObjectLabels: (label) => dir.listObjectLabels(label, PIN),
      cleanup: () => {
        ip.close();
        dir.cleanup();
      },
    };
  },
});

const IMPLEMENTATIONS: Implementation[] = [
  {
    name: 'SoftHSM2',
    profile: 'softhsm2',
    missing: findSoftHsmModule() ? undefined : 'SoftHSM2 is not installed (apt-get install softhsm2)',
    setUp() {
      const dir = createSoftHsmDir();
      for (const t of TOKENS) dir.addToken(t, PIN);
      return {
        modulePath: findSoftHsmModule() ?? '',
        listObjectLabels: (label) => dir.listObjectLabels(label, PIN),
        cleanup: () => dir.cleanup(),
      };
    },
  },
  {
    name: 'NSS softoken',
    profile: 'nss',
    missing: findNssSoftokenModule()
      ? undefined
      : 'NSS softoken (libsoftokn3.so) is not installed and could not be (apt-get install libnss3 as root)',
    setUp() {
      const nss = createNssSoftoken(TOKENS.map((label) => ({ label, pin: PIN })));
      return {
        modulePath: nss.module,
        libraryParameters: nss.libraryParameters,
        listObjectLabels: (label) => nss.listObjectLabels(label, PIN),
        cleanup: () => nss.cleanup(),
      };
    },
  },
  emulated('luna-fips', 'Luna-FIPS'),
  emulated('cloudhsm', 'CloudHSM'),
];

const codeOf = (e: unknown): string => (isKeygateError(e) ? e.code : `not a KeygateError: ${String(e)}`);

for (const impl of IMPLEMENTATIONS) {
  for (const workerThreads of [0, 2]) {
    const title = `PKCS#11 adapter on ${impl.name}, ${workerThreads ? `${workerThreads} worker threads` : 'libuv pool'}`;
    describe(title, { timeout: 60_000, skip: impl.missing }, () => {
      let env: ReturnType<Implementation['setUp']>;
      let hsm: Pkcs11Hsm;
      let svc: KeyService;
      const log = captureLines();
      const make = (tokenLabel: string, pin: string, lines = log) =>
        new Pkcs11Hsm({
          modulePath: env.modulePath,
          libraryParameters: env.libraryParameters,
          restrictMechanisms: HSM_PROFILES[impl.profile].restrictMechanisms,
          requireLocal: HSM_PROFILES[impl.profile].requireLocal,
          gcmIv: HSM_PROFILES[impl.profile].gcmIv,
          tokenLabel,
          pin: new Secret(pin, 'test'),
          sessions: 4,
          workerThreads,
          random: systemRandom,
          logger: createLogger({ level: 'debug', destination: lines.stream }),
          backoffInitialMs: 10,
        });

      before(() => {
        env = impl.setUp();
        hsm = make('kg-main', PIN);
        svc = createKeyService({
          hsm,
          store: new MemoryKeyStore(),
          clock: systemClock,
          random: systemRandom,
          rewrapOnUnwrap: true,
        });
      });

      after(async () => {
        await hsm?.close();
        env?.cleanup();
      });

      it('is ready after start and logged in once', () => {
        assert.deepEqual(hsm.status().reasons, []);
        assert.equal(hsm.status().ready, true);
        assert.equal(log.lines.filter((l) => l.msg === 'pkcs11 login').length, 1);
      });

      it("generates root keys with keygate's template: sensitive, never extractable, value unreadable", async () => {
        const ref = { instance: 'inst-t', crkId: 'k', versionId: `v-${workerThreads}` };
        await hsm.generateKey(ref);
        const lib = hsm.token.lib;
        const s = hsm.token.openSession();
        try {
          lib.C_FindObjectsInit(s, [
            { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
            { type: pkcs11js.CKA_LABEL, value: objectLabel(ref) },
          ]);
          const found = lib.C_FindObjects(s, 4);
          lib.C_FindObjectsFinal(s);
          assert.equal(found.length, 1);
          const [key] = found as [Buffer];
          const bool = (type: number) => lib.C_GetAttributeValue(s, key, [{ type }])[0]?.value?.[0] === 1;
          assert.equal(bool(pkcs11js.CKA_TOKEN), true);
          assert.equal(bool(pkcs11js.CKA_PRIVATE), true);
          assert.equal(bool(pkcs11js.CKA_SENSITIVE), true);
          assert.equal(bool(pkcs11js.CKA_ALWAYS_SENSITIVE), true);
          assert.equal(bool(pkcs11js.CKA_EXTRACTABLE), false);
          assert.equal(bool(pkcs11js.CKA_NEVER_EXTRACTABLE), true);
          assert.equal(bool(pkcs11js.CKA_ENCRYPT), true);
          assert.equal(bool(pkcs11js.CKA_WRAP), false);
          assert.equal(bool(pkcs11js.CKA_UNWRAP), false);
          const [len] = lib.C_GetAttributeValue(s, key, [{ type: pkcs11js.CKA_VALUE_LEN }]);
          assert.equal(len?.value?.readUInt32LE(0), 32);
          const [id] = lib.C_GetAttributeValue(s, key, [{ type: pkcs11js.CKA_ID }]);
          assert.equal(id?.value?.toString('ascii'), ref.versionId);
          assert.throws(
            () => lib.C_GetAttributeValue(s, key, [{ type: pkcs11js.CKA_VALUE }]),
            /CKR_ATTRIBUTE_SENSITIVE/,
          );
          // NSS softoken marks the keys it generates not local: its profile does not require it.
          assert.equal(bool(pkcs11js.CKA_LOCAL), impl.profile !== 'nss');
          assert.equal(HSM_PROFILES[impl.profile].requireLocal, impl.profile !== 'nss');
        } finally {
          hsm.token.closeQuietly(s);
        }
        await hsm.destroyKey(ref);
      });

      it('wraps and unwraps (AES-GCM, caller IV); rotation keeps old versions; destroy removes every object', async () => {
        const key = await svc.create({ instance: 'inst-a', name: `crk-${workerThreads}` });
        const w = await svc.wrap({ instance: 'inst-a', keyId: key.id, aad: ['ns/secret'] });
        const rotated = await svc.rotate('inst-a', key.id);
        const labels = env.listObjectLabels('kg-main');
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
        const w2 = await svc.wrap({ instance: 'inst-a', keyId: key.id, aad: [] });
        assert.equal(w2.keyVersionId, rotated.versions[1]?.id);
        const u2 = await svc.unwrap({
          instance: 'inst-a',
          keyId: key.id,
          ciphertext: w2.ciphertext,
          aad: [],
        });
        assert.deepEqual(u2.plaintext, w2.generated);
        await assert.rejects(
          svc.unwrap({ instance: 'inst-a', keyId: key.id, ciphertext: w.ciphertext, aad: ['other'] }),
          (e: unknown) => codeOf(e) === 'UNPROCESSABLE_CIPHERTEXT_ERR',
        );
        await svc.destroy('inst-a', key.id);
        const left = env.listObjectLabels('kg-main');
        assert.ok(!left.some((l) => l.includes(key.id)), left.join());
        await assert.rejects(
          svc.unwrap({ instance: 'inst-a', keyId: key.id, ciphertext: w.ciphertext, aad: ['ns/secret'] }),
          (e: unknown) => codeOf(e) === 'KEY_DELETED_ERR',
        );
      });

      const appended = HSM_PROFILES[impl.profile].gcmIv.mode === 'token-appended';
      const ivBytes = HSM_PROFILES[impl.profile].gcmIv.bytes;

      it(
        appended
          ? 'refuses to seal with a caller IV from C_GenerateRandom (gcmIv token-random): a clean error, the key still works'
          : 'seals with IVs from C_GenerateRandom (gcmIv token-random) too',
        async () => {
          const other = new Pkcs11Hsm({
            modulePath: env.modulePath,
            libraryParameters: env.libraryParameters,
            restrictMechanisms: HSM_PROFILES[impl.profile].restrictMechanisms,
            requireLocal: HSM_PROFILES[impl.profile].requireLocal,
            tokenLabel: 'kg-main',
            pin: new Secret(PIN, 'test'),
            sessions: 1,
            workerThreads: Math.min(workerThreads, 1),
            gcmIv: { mode: 'token-random', bytes: 12 },
            random: () => Buffer.alloc(0),
            logger: createLogger({ level: 'silent' }),
          });
          try {
            const ref = { instance: 'i', crkId: 'k', versionId: `hsm-iv-${workerThreads}` };
            await other.generateKey(ref);
            if (appended) {
              // A module that makes its own IVs refuses a caller's (as Luna in FIPS mode does).
              await assert.rejects(
                other.encrypt(ref, Buffer.alloc(32, 1), Buffer.from('aad')),
                (e: unknown) => isKeygateError(e),
              );
              const sealed = await hsm.encrypt(ref, Buffer.alloc(32, 1), Buffer.from('aad'));
              assert.equal(sealed.iv.length, ivBytes);
              assert.deepEqual(await other.decrypt(ref, sealed, Buffer.from('aad')), Buffer.alloc(32, 1));
              await other.destroyKey(ref);
              return;
            }
            const a = await other.encrypt(ref, Buffer.alloc(32, 1), Buffer.from('aad'));
            const b = await other.encrypt(ref, Buffer.alloc(32, 1), Buffer.from('aad'));
            assert.equal(a.iv.length, 12);
            assert.notDeepEqual(a.iv, b.iv);
            assert.deepEqual(await other.decrypt(ref, a, Buffer.from('aad')), Buffer.alloc(32, 1));
            await other.destroyKey(ref);
          } finally {
            await other.close();
          }
          assert.equal(hsm.status().ready, true);
        },
      );

      it('tries a wrong PIN once, then reports the token unusable', async () => {
        const bad = captureLines();
        const badHsm = make('kg-badpin', '0000', bad);
        try {
          const st = badHsm.status();
          assert.equal(st.ready, false);
          assert.match(st.reasons.join(), /CKR_PIN_INCORRECT/);
          for (let i = 0; i < 3; i++) {
            await assert.rejects(
              badHsm.encrypt({ instance: 'i', crkId: 'k', versionId: 'v' }, Buffer.alloc(1), Buffer.alloc(0)),
              (e: unknown) => codeOf(e) === 'HSM_PIN_INCORRECT',
            );
          }
          assert.equal(bad.lines.filter((l) => l.msg === 'pkcs11 login').length, 1);
          assert.ok(!JSON.stringify(bad.lines).includes('0000'));
        } finally {
          await badHsm.close();
        }
        // The right PIN still works on that token: the refusal did not lock it.
        const good = make('kg-badpin', PIN, captureLines());
        try {
          assert.equal(good.status().ready, true);
        } finally {
          await good.close();
        }
        assert.equal(hsm.status().ready, true);
      });

      it('keeps 64 concurrent mixed operations apart: each caller gets its own result', async () => {
        const a = { instance: 'inst-c', crkId: 'k0', versionId: `v0-${workerThreads}` };
        const b = { instance: 'inst-c', crkId: 'k1', versionId: `v1-${workerThreads}` };
        const refs = [a, b];
        for (const ref of refs) await hsm.generateKey(ref);
        const sealedBefore = await hsm.encrypt(b, Buffer.alloc(32, 0xee), Buffer.from('pre'));
        const results = await Promise.all(
          Array.from({ length: 64 }, async (_, i) => {
            const ref = i % 2 === 0 ? a : b;
            if (i % 4 === 3) {
              // Unwrap-only callers, interleaved with the wrap-then-unwrap ones.
              const back = await hsm.decrypt(b, sealedBefore, Buffer.from('pre'));
              return back.equals(Buffer.alloc(32, 0xee));
            }
            const plain = Buffer.alloc(32, i);
            const aad = Buffer.from(`aad-${i}`);
            const sealed = await hsm.encrypt(ref, plain, aad);
            const back = await hsm.decrypt(ref, sealed, aad);
            return back.equals(plain) && sealed.iv.length === ivBytes && sealed.tag.length === 16;
          }),
        );
        assert.deepEqual(results, Array(64).fill(true));
        for (const ref of refs) await hsm.destroyKey(ref);
      });

      it('answers 3,000 random and mutated blobs with 4xx codes only', async () => {
        const key = await svc.create({ instance: 'inst-f', name: `fuzz-${workerThreads}` });
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
        for (let start = 0; start < 3_000; start += 200) {
          await Promise.all(
            Array.from({ length: 200 }, async (_, j) => {
              try {
                await svc.unwrap({ instance: 'inst-f', keyId: key.id, ciphertext: blob(start + j), aad: [] });
                codes.set('ok', (codes.get('ok') ?? 0) + 1);
              } catch (e) {
                codes.set(codeOf(e), (codes.get(codeOf(e)) ?? 0) + 1);
              }
            }),
          );
        }
        assert.deepEqual([...codes.keys()], ['UNPROCESSABLE_CIPHERTEXT_ERR'], JSON.stringify([...codes]));
        assert.equal(hsm.status().ready, true);
      });

      it('refuses a second key object with a CKA_ID in use (NSS would store it over the first)', async () => {
        const first = { instance: 'inst-id', crkId: 'a', versionId: `same-${workerThreads}` };
        const second = { instance: 'inst-id', crkId: 'b', versionId: first.versionId };
        await hsm.generateKey(first);
        const sealed = await hsm.encrypt(first, Buffer.alloc(32, 9), Buffer.from('id'));
        await assert.rejects(hsm.generateKey(second), (e: unknown) => codeOf(e) === 'HSM_ERROR');
        assert.deepEqual(await hsm.decrypt(first, sealed, Buffer.from('id')), Buffer.alloc(32, 9));
        assert.deepEqual(
          env.listObjectLabels('kg-main').filter((l) => l.startsWith('keygate:inst-id:')),
          [objectLabel(first)],
        );
        await hsm.destroyKey(first);
      });

      it('without that check: SoftHSM2 keeps two objects, NSS stores the second key over the first', () => {
        const lib = hsm.token.lib;
        const s = hsm.token.openSession();
        const id = Buffer.from(`raw-${workerThreads}`);
        const generate = (label: string) =>
          lib.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, [
            { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
            { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
            { type: pkcs11js.CKA_VALUE_LEN, value: 32 },
            { type: pkcs11js.CKA_TOKEN, value: true },
            { type: pkcs11js.CKA_ENCRYPT, value: true },
            { type: pkcs11js.CKA_LABEL, value: label },
            { type: pkcs11js.CKA_ID, value: id },
          ]);
        try {
          const first = generate('raw-first');
          const second = generate('raw-second');
          lib.C_FindObjectsInit(s, [
            { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
            { type: pkcs11js.CKA_ID, value: id },
          ]);
          const found = lib.C_FindObjects(s, 8);
          lib.C_FindObjectsFinal(s);
          const labels = found.map((h) =>
            lib.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_LABEL }])[0]?.value?.toString(),
          );
          if (impl.name === 'NSS softoken') {
            assert.ok(first.equals(second), 'the same handle');
            assert.deepEqual(labels, ['raw-second']);
          } else {
            assert.ok(!first.equals(second));
            assert.deepEqual(labels.sort(), ['raw-first', 'raw-second']);
          }
          for (const h of found) lib.C_DestroyObject(s, h);
        } finally {
          hsm.token.closeQuietly(s);
        }
      });

      it(`hsm check: the profile fits, only ${appended ? `a ${ivBytes}-byte module-appended IV` : 'host IVs'} work, no stray objects`, async () => {
        const report = await probeToken(hsm, {
          profileName: impl.profile,
          profile: HSM_PROFILES[impl.profile],
          configured: HSM_PROFILES[impl.profile].gcmIv,
          restrictMechanisms: HSM_PROFILES[impl.profile].restrictMechanisms,
          random: systemRandom,
          isLive: async () => 'live',
        });
        assert.equal(report.verdict.ok, true, report.verdict.text);
        assert.equal(report.template.works, true, report.template.detail);
        const works = report.ivTrials.map((t) => `${t.setting.mode}/${t.setting.bytes}:${t.works}`);
        const fits = (mode: string, bytes: number) =>
          appended ? mode === 'token-appended' && bytes === ivBytes : mode === 'host';
        assert.deepEqual(
          works,
          [
            ['host', 12],
            ['token-appended', 12],
            ['token-appended', 16],
          ].map(([mode, bytes]) => `${mode}/${bytes}:${fits(String(mode), Number(bytes))}`),
        );
        assert.ok(report.mechanisms.every((m) => m.supported));
        console.log(`${impl.name}: ${formatProbe(report).join(' | ')}`);
      });

      it('recovers when every session is closed under it, without a restart', async () => {
        const key = await svc.create({ instance: 'inst-s', name: `crk-${workerThreads}` });
        const w = await svc.wrap({ instance: 'inst-s', keyId: key.id, aad: [] });
        hsm.token.lib.C_CloseAllSessions(hsm.token.slot);
        const u = await svc.unwrap({ instance: 'inst-s', keyId: key.id, ciphertext: w.ciphertext, aad: [] });
        assert.deepEqual(u.plaintext, w.generated);
        await Promise.all(
          Array.from({ length: 8 }, () => svc.wrap({ instance: 'inst-s', keyId: key.id, aad: [] })),
        );
        assert.equal(hsm.status().ready, true);
      });
    });
  }
}
