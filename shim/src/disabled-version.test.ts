import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ServiceError, status } from '@grpc/grpc-js';
import { errorCollectionFor, KeygateError, SHIM_LIMITS } from '@keygate/shared';
import { createLogger } from '@keygate/shared/log';
import { loadShimSettings } from './config.js';
import { KmsCore } from './core/kms-core.js';
import { fromHttpStatus } from './gateway-client/translate.js';
import { KmsClient } from './grpc/kms-client.js';
import { toStatus } from './grpc/to-status.js';
import { type RunningShim, startShim } from './main.js';
import { testCoreOptions } from './testing/core-options.js';
import { FakeGatewayClient } from './testing/fake-gateway-client.js';
import { FakeKeyProtectServer } from './testing/fake-key-protect-server.js';
import { hasOpenssl, makeTestPki } from './testing/test-pki.js';

const V2 = SHIM_LIMITS.v2MaxCiphertextBytes;

/**
 * A root-key version disabled after a rotation (docs/rotation.md): the gateway answers 422
 * KEY_VERSION_DISABLED_ERR to an unwrap of a blob under it. That is a fact about one ciphertext,
 * never about the key: the shim must fail only that Decrypt, keep its DEKs and stay healthy.
 */
describe('a blob under a disabled key version', () => {
  it('fails only its Decrypt (FAILED_PRECONDITION), keeping every DEK and the health', async () => {
    const gateway = new FakeGatewayClient();
    const core = new KmsCore(testCoreOptions(gateway));
    await core.refresh();
    const mine = await core.encrypt(Buffer.from('mine'), V2);
    // Another node's ciphertext: its DEK is not in this core's cache, so Decrypt must unwrap it.
    const other = new KmsCore(testCoreOptions(gateway));
    await other.refresh();
    const theirs = await other.encrypt(Buffer.from('theirs'), V2);
    const cached = core.stats().cacheSize;
    assert.ok(cached > 0);
    // What the gateway's answer becomes in the shim's HTTP client.
    const answer = fromHttpStatus(422, errorCollectionFor('KEY_VERSION_DISABLED_ERR'), 'https://gw');
    assert.equal(answer.retryable, false);
    gateway.failWith = answer.error;
    const err = await Promise.resolve(core.decrypt(theirs.ciphertext, theirs.keyId, V2)).then(
      () => assert.fail('decrypted a blob under a disabled version'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof KeygateError && err.code === 'KEY_VERSION_DISABLED_ERR');
    assert.equal(toStatus(err).error.code, status.FAILED_PRECONDITION);
    assert.equal(core.status().healthz, 'ok', 'not a key state: Status stays healthy');
    assert.equal(core.stats().cacheSize, cached, 'no cached DEK was dropped');
    const unwraps = gateway.unwrapCalls;
    assert.equal((await core.decrypt(mine.ciphertext, mine.keyId, V2)).toString(), 'mine');
    assert.equal((await core.encrypt(Buffer.from('next'), V2)).keyId, mine.keyId);
    assert.equal(gateway.unwrapCalls, unwraps, 'served from the kept cache, without the gateway');
    gateway.failWith = undefined; // the version enabled again
    assert.equal((await core.decrypt(theirs.ciphertext, theirs.keyId, V2)).toString(), 'theirs');
    assert.equal(core.status().healthz, 'ok');
  });
});

describe('a disabled key version through a running shim (real mTLS to the gateway, real gRPC socket)', {
  skip: !hasOpenssl(),
}, () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-disabled-'));
  const pki = hasOpenssl() ? makeTestPki() : undefined;
  let kp: FakeKeyProtectServer;
  const shims: RunningShim[] = [];
  const clients: KmsClient[] = [];

  async function shim(name: string): Promise<KmsClient> {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      `SERVER_CONFIG:
  UNIX_SOCKET_PATH: "${join(dir, name, 'kms.sock')}"
  TOKEN_URL: "${kp.tokenUrl}"
  TOKEN_URL_CA_FILE: "${pki?.caFile}"
  HEALTHZ_PORT: 0
  NEW_DEK: "false"
KP_CONFIG:
  CRK_ID: "crk-1"
  URL: "${kp.url}"
  KP_CA_FILE: "${pki?.caFile}"
  INSTANCE_ID: "inst-1"
LOGGER:
  LOG_LEVEL: "silent"
KEYGATE:
  API_KEY_FILE: "${join(dir, 'apikey')}"
  CLIENT_CERT_FILE: "${pki?.clientCertFile}"
  CLIENT_KEY_FILE: "${pki?.clientKeyFile}"
  DEADLINE_MS: 1000
`,
    );
    const s = await startShim(loadShimSettings(file, {}), { logger: createLogger({ level: 'silent' }) });
    shims.push(s);
    const c = new KmsClient(s.socketPath);
    clients.push(c);
    return c;
  }

  before(async () => {
    writeFileSync(join(dir, 'apikey'), 'disabled-version-key\n');
    kp = await FakeKeyProtectServer.start({
      pki: pki as NonNullable<typeof pki>,
      apiKey: 'disabled-version-key',
      instanceId: 'inst-1',
      crkId: 'crk-1',
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(shims.map((s) => s.close()));
    await kp.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers that Decrypt FAILED_PRECONDITION and keeps serving everything else', async () => {
    const a = await shim('a');
    const b = await shim('b');
    const theirs = await a.encrypt(Buffer.from('theirs'));
    const mine = await b.encrypt(Buffer.from('mine'));
    const unwraps = kp.counts.unwrap;
    kp.failWith = 'KEY_VERSION_DISABLED_ERR';
    const err = await b.decrypt(theirs.ciphertext, theirs.key_id).then(
      () => assert.fail('decrypted a blob under a disabled version'),
      (e: unknown) => e as ServiceError,
    );
    assert.equal(err.code, status.FAILED_PRECONDITION);
    assert.deepEqual(err.metadata?.get('keygate-code'), ['KEY_VERSION_DISABLED_ERR']);
    assert.equal(kp.counts.unwrap - unwraps, 1, 'one call, not retried');
    assert.equal((await b.status()).healthz, 'ok');
    assert.equal((await b.decrypt(mine.ciphertext, mine.key_id)).plaintext.toString(), 'mine');
    assert.equal((await b.encrypt(Buffer.from('more'))).key_id, mine.key_id);
    kp.failWith = undefined;
    assert.equal((await b.decrypt(theirs.ciphertext, theirs.key_id)).plaintext.toString(), 'theirs');
    assert.equal((await b.status()).healthz, 'ok');
  });
});
