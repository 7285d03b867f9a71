import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { systemRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import pkcs11js from 'pkcs11js';
import { objectLabel } from '../../core/keys/hsm.js';
import { softHsmAdapter } from '../../testing/pkcs11-adapter.js';
import { captureLines, createSoftHsmDir, type SoftHsmDir } from '../../testing/softhsm.js';
import { gcm } from './gcm-mechanism.js';
import { keyTemplate } from './key-object.js';
import type { Pkcs11Hsm } from './pkcs11-hsm.js';

const PIN = '2468';
const refusedCode = (e: unknown) => isKeygateError(e) && e.code === 'HSM_KEY_OBJECT_REFUSED';

/**
 * Issue 17 item 3 on SoftHSM2: root-key objects are made with the restrictive template, found by
 * class, key type, label and CKA_ID, and checked before use, so a planted or duplicated object
 * under a keygate label is refused; blobs with 16-byte IVs (format 2) decrypt.
 */
describe('PKCS#11 key objects: template, lookup and checks (SoftHSM2)', () => {
  let softhsm: SoftHsmDir;
  const open: Pkcs11Hsm[] = [];
  const log = captureLines();

  before(() => {
    softhsm = createSoftHsmDir();
    softhsm.addToken('kg-objects', PIN);
  });
  after(async () => {
    for (const h of open) await h.close();
    softhsm?.cleanup();
  });

  const adapter = (workerThreads = 0) => {
    const hsm = softHsmAdapter('kg-objects', PIN, log.stream, { workerThreads, restrictMechanisms: true });
    open.push(hsm);
    return hsm;
  };
  /** Runs raw PKCS#11 calls on one of the adapter's logged-in sessions (as an operator's tool would). */
  const raw = <T>(hsm: Pkcs11Hsm, work: (lib: pkcs11js.PKCS11, s: Buffer) => T) =>
    hsm.pool.use(
      async (s) => work(hsm.token.lib, s),
      () => undefined,
    );
  const find = (lib: pkcs11js.PKCS11, s: Buffer, label: string) => {
    lib.C_FindObjectsInit(s, [{ type: pkcs11js.CKA_LABEL, value: label }]);
    try {
      return lib.C_FindObjects(s, 8);
    } finally {
      lib.C_FindObjectsFinal(s);
    }
  };

  it('makes root keys usable for AES-GCM only: allowed mechanisms, not modifiable, not copyable, no derive/sign/verify/wrap', async () => {
    const hsm = adapter();
    const ref = { instance: 'i', crkId: 'k', versionId: 'v1' };
    await hsm.generateKey(ref);
    const attrs = await raw(hsm, (lib, s) => {
      const [h] = find(lib, s, objectLabel(ref));
      assert.ok(h);
      return lib.C_GetAttributeValue(s, h, [
        { type: pkcs11js.CKA_ALLOWED_MECHANISMS },
        { type: pkcs11js.CKA_MODIFIABLE },
        { type: pkcs11js.CKA_COPYABLE },
        { type: pkcs11js.CKA_DERIVE },
        { type: pkcs11js.CKA_SIGN },
        { type: pkcs11js.CKA_WRAP },
        { type: pkcs11js.CKA_EXTRACTABLE },
        { type: pkcs11js.CKA_LOCAL },
      ]);
    });
    const v = (t: number) => attrs.find((a) => a.type === t)?.value as Buffer;
    const mechs = v(pkcs11js.CKA_ALLOWED_MECHANISMS);
    assert.equal(mechs.length, 8, 'one CK_MECHANISM_TYPE');
    assert.equal(Number(mechs.readBigUInt64LE(0)), pkcs11js.CKM_AES_GCM);
    for (const t of [
      pkcs11js.CKA_MODIFIABLE,
      pkcs11js.CKA_COPYABLE,
      pkcs11js.CKA_DERIVE,
      pkcs11js.CKA_SIGN,
      pkcs11js.CKA_WRAP,
      pkcs11js.CKA_EXTRACTABLE,
    ]) {
      assert.equal(v(t)[0], 0, `attribute 0x${t.toString(16)} is false`);
    }
    assert.equal(v(pkcs11js.CKA_LOCAL)[0], 1);
    const sealed = await hsm.encrypt(ref, Buffer.alloc(32, 3), Buffer.from('aad'));
    assert.deepEqual(await hsm.decrypt(ref, sealed, Buffer.from('aad')), Buffer.alloc(32, 3));
    // The token enforces the template: CBC with this key is refused.
    await raw(hsm, (lib, s) => {
      const [h] = find(lib, s, objectLabel(ref));
      assert.throws(
        () =>
          lib.C_EncryptInit(
            s,
            { mechanism: pkcs11js.CKM_AES_CBC_PAD, parameter: Buffer.alloc(16) },
            h as Buffer,
          ),
        /CKR_MECHANISM_INVALID/,
      );
    });
  });

  for (const workerThreads of [0, 1]) {
    it(`refuses a key planted under a keygate label (imported, not generated on the token) and a duplicated label${workerThreads ? ', on worker threads' : ''}`, async () => {
      const maker = adapter();
      const planted = { instance: 'i', crkId: 'k', versionId: `planted${workerThreads}` };
      await raw(maker, (lib, s) =>
        lib.C_CreateObject(s, [
          { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
          { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_PRIVATE, value: true },
          { type: pkcs11js.CKA_SENSITIVE, value: true },
          { type: pkcs11js.CKA_EXTRACTABLE, value: false },
          { type: pkcs11js.CKA_ENCRYPT, value: true },
          { type: pkcs11js.CKA_DECRYPT, value: true },
          { type: pkcs11js.CKA_VALUE, value: Buffer.alloc(32, 0x41) },
          { type: pkcs11js.CKA_LABEL, value: objectLabel(planted) },
          { type: pkcs11js.CKA_ID, value: Buffer.from(planted.versionId) },
        ]),
      );
      const twice = { instance: 'i', crkId: 'k', versionId: `twice${workerThreads}` };
      await maker.generateKey(twice);
      // The adapter refuses a second object with a CKA_ID in use (NSS softoken would store it over
      // the first): the duplicate is made past it, as another program on the token could.
      await assert.rejects(
        maker.generateKey(twice),
        (e: unknown) => isKeygateError(e) && e.code === 'HSM_ERROR',
      );
      await raw(maker, (lib, s) =>
        lib.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, keyTemplate(objectLabel(twice), false)),
      );
      // A fresh adapter (no cached handles) finds them as a restarted gateway would.
      const hsm = adapter(workerThreads);
      await assert.rejects(hsm.encrypt(planted, Buffer.alloc(32, 1), Buffer.alloc(0)), refusedCode);
      await assert.rejects(hsm.encrypt(twice, Buffer.alloc(32, 1), Buffer.alloc(0)), refusedCode);
      const errors = log.lines.filter(
        (l) => l.msg === "key object refused: it fails keygate's checks and is not used",
      );
      assert.ok(
        errors.some((l) => /was extractable once|not generated on the token/.test(String(l.reason))),
        JSON.stringify(errors),
      );
      assert.ok(errors.some((l) => /more than one/.test(String(l.reason))));
      // The good keys of the token keep working.
      const good = { instance: 'i', crkId: 'k', versionId: `good${workerThreads}` };
      await maker.generateKey(good);
      const sealed = await hsm.encrypt(good, Buffer.alloc(32, 2), Buffer.alloc(0));
      assert.deepEqual(await hsm.decrypt(good, sealed, Buffer.alloc(0)), Buffer.alloc(32, 2));
    });
  }

  it('decrypts what a module that generates 16-byte IVs made (wrapped DEK format 2)', async () => {
    const hsm = adapter();
    const ref = { instance: 'i', crkId: 'k', versionId: 'iv16' };
    await hsm.generateKey(ref);
    const iv = systemRandom(16);
    const aad = Buffer.from('header and context');
    const out = await raw(hsm, (lib, s) => {
      const [h] = find(lib, s, objectLabel(ref));
      lib.C_EncryptInit(s, gcm(iv, aad), h as Buffer);
      return lib.C_Encrypt(s, Buffer.alloc(32, 9), Buffer.alloc(48));
    });
    const sealed = { iv, ciphertext: out.subarray(0, 32), tag: out.subarray(32) };
    assert.deepEqual(await hsm.decrypt(ref, sealed, aad), Buffer.alloc(32, 9));
    await assert.rejects(
      hsm.decrypt(ref, { ...sealed, iv: systemRandom(14) }, aad),
      (e: unknown) => isKeygateError(e) && e.code === 'UNPROCESSABLE_CIPHERTEXT_ERR',
    );
  });
});
