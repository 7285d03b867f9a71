import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { createLogger } from '@keygate/shared/log';
import { loadGatewayConfig } from './config.js';
import { buildKeyRuntime } from './key-runtime.js';
import { createGatewayFixture, type GatewayFixture, INSTANCE } from './testing/gateway-fixture.js';
import { createNssSoftoken, findNssSoftokenModule, type NssSoftoken } from './testing/nss-softoken.js';
import { SOFTHSM_MODULE } from './testing/softhsm.js';

/** `hsm.libraryParameters` from a config file to a working NSS softoken token (docs/hsm.md). */
describe('hsm.libraryParameters', {
  skip: findNssSoftokenModule()
    ? undefined
    : 'NSS softoken (libsoftokn3.so, package libnss3) is not installed',
}, () => {
  let fx: GatewayFixture | undefined;
  let nss: NssSoftoken | undefined;
  after(() => {
    fx?.softhsm.cleanup();
    nss?.cleanup();
  });

  it('a config naming libsoftokn3.so and its parameters builds a key runtime that wraps and unwraps', async () => {
    fx = await createGatewayFixture();
    nss = createNssSoftoken([{ label: fx.tokenLabel, pin: fx.pin }]);
    const file = fx.writeConfig('nss', {
      hsmExtra: `profile: nss\n  libraryParameters: ${JSON.stringify(nss.libraryParameters)}`,
    });
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace(`module: ${SOFTHSM_MODULE}`, `module: ${nss.module}`),
    );
    const config = loadGatewayConfig(file);
    assert.equal(config.hsm.backend === 'pkcs11' && config.hsm.libraryParameters, nss.libraryParameters);
    const runtime = buildKeyRuntime(config, { configFile: file, logger: createLogger({ level: 'silent' }) });
    try {
      await runtime.store.open();
      assert.equal(runtime.hsm.status().ready, true, runtime.hsm.status().reasons.join());
      const key = await runtime.keys.create({ instance: INSTANCE, name: 'nss-config' });
      const w = await runtime.keys.wrap({ instance: INSTANCE, keyId: key.id, aad: ['a'] });
      const u = await runtime.keys.unwrap({
        instance: INSTANCE,
        keyId: key.id,
        ciphertext: w.ciphertext,
        aad: ['a'],
      });
      assert.deepEqual(u.plaintext, w.generated);
      assert.ok(nss.listObjectLabels(fx.tokenLabel, fx.pin).some((l) => l.includes(key.id)));
    } finally {
      await runtime.close();
    }
  });
});
