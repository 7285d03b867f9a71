import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { errorCollectionFor, KeygateError, SHIM_LIMITS } from '@keygate/shared';
import { KmsCore } from './core/kms-core.js';
import { fromHttpStatus } from './gateway-client/translate.js';
import { toStatus } from './grpc/to-status.js';
import { testCoreOptions } from './testing/core-options.js';
import { FakeGatewayClient } from './testing/fake-gateway-client.js';

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
