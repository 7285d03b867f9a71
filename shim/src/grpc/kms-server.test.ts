import assert from 'node:assert/strict';
import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ServiceError } from '@grpc/grpc-js';
import { GrpcStatus, KeygateError, ShimAlg, systemRandom } from '@keygate/shared';
import { createLogger } from '@keygate/shared/log';
import { KmsCore } from '../core/kms-core.js';
import { testCoreOptions } from '../testing/core-options.js';
import { FakeGatewayClient } from '../testing/fake-gateway-client.js';
import { KmsClient } from './kms-client.js';
import { type KmsServer, startKmsServer } from './kms-server.js';

const logger = createLogger({ level: 'silent' });
const runtime = { name: 'keygate-shim', version: '0.0.0-test' };

function newCore(gateway: FakeGatewayClient): KmsCore {
  return new KmsCore(testCoreOptions(gateway));
}

async function rejectsCode(p: Promise<unknown>, code: number): Promise<void> {
  await assert.rejects(p, (err: unknown) => (err as ServiceError).code === code);
}

describe('KMS gRPC server on a UNIX socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-shim-'));
  const socketPath = join(dir, 'sub', 'kms.sock');
  const gateway = new FakeGatewayClient();
  const core = newCore(gateway);
  let server: KmsServer;
  let client: KmsClient;

  before(async () => {
    await core.refresh();
    server = await startKmsServer({
      core,
      socketPath,
      socketMode: 0o600,
      logger,
      logAllValues: true,
      runtime,
    });
    client = new KmsClient(socketPath);
  });
  after(async () => {
    client.close();
    await server.close(1000);
  });

  it('creates the socket with mode 0600 in a new folder', () => {
    const st = statSync(socketPath);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
  });

  it('round-trips v2 with the Status key_id, under 1024 bytes', async () => {
    const status = await client.status();
    assert.deepEqual({ version: status.version, healthz: status.healthz }, { version: 'v2', healthz: 'ok' });
    const seed = systemRandom(32);
    const enc = await client.encrypt(seed, 'uid-1');
    assert.equal(enc.key_id, status.key_id);
    assert.ok(enc.ciphertext.length <= 1024);
    assert.deepEqual(enc.annotations, {});
    assert.deepEqual((await client.decrypt(enc.ciphertext, enc.key_id)).plaintext, seed);
  });

  it('round-trips v1beta1 after the version handshake', async () => {
    const v = await client.v1Version();
    assert.equal(v.version, 'v1beta1');
    const dek = systemRandom(32);
    const enc = await client.v1Encrypt(dek);
    assert.deepEqual((await client.v1Decrypt(enc.cipher)).plain, dek);
    await rejectsCode(client.v1Encrypt(dek, 'v1'), GrpcStatus.INVALID_ARGUMENT);
  });

  it('answers INVALID_ARGUMENT to bad ciphertexts and key_ids, with fixed texts, and keeps serving', async () => {
    const enc = await client.encrypt(Buffer.from('seed'));
    const tampered = Buffer.from(enc.ciphertext);
    tampered[tampered.length - 3] = (tampered[tampered.length - 3] ?? 0) ^ 0x40;
    const bad: [Buffer, string][] = [
      [tampered, enc.key_id],
      [enc.ciphertext.subarray(0, enc.ciphertext.length - 1), enc.key_id],
      [Buffer.alloc(0), enc.key_id],
      [systemRandom(300), enc.key_id],
      [enc.ciphertext, 'unknown-key'],
      [enc.ciphertext, ''],
    ];
    for (const [ct, kid] of bad) {
      await assert.rejects(client.decrypt(ct, kid), (err: ServiceError) => {
        assert.equal(err.code, GrpcStatus.INVALID_ARGUMENT);
        assert.ok(!/stack|Error:/.test(err.details));
        return true;
      });
    }
    await rejectsCode(client.v1Decrypt(systemRandom(100)), GrpcStatus.INVALID_ARGUMENT);
    assert.equal((await client.decrypt(enc.ciphertext, enc.key_id)).plaintext.toString(), 'seed');
  });

  it('maps gateway failures to UNAVAILABLE, PERMISSION_DENIED and FAILED_PRECONDITION', async () => {
    const g = new FakeGatewayClient();
    const c = new KmsCore(testCoreOptions(g, { alg: ShimAlg.A256GCM, newDekPerEncrypt: true }));
    const path = join(dir, 'map.sock');
    const s = await startKmsServer({
      core: c,
      socketPath: path,
      socketMode: 0o600,
      logger,
      logAllValues: false,
      runtime,
    });
    const cl = new KmsClient(path);
    try {
      g.down = true;
      await rejectsCode(cl.encrypt(Buffer.from('x')), GrpcStatus.UNAVAILABLE);
      g.down = false;
      g.failWith = new KeygateError('GATEWAY_REFUSED');
      await rejectsCode(cl.encrypt(Buffer.from('x')), GrpcStatus.PERMISSION_DENIED);
      g.failWith = new KeygateError('KEY_ACTION_INVALID_STATE_ERR');
      await rejectsCode(cl.encrypt(Buffer.from('x')), GrpcStatus.FAILED_PRECONDITION);
      const st = await cl.status();
      assert.equal(st.healthz, 'root key not active');
      // Known not active: the next call fails the same way without asking the gateway.
      const calls = g.wrapCalls;
      await rejectsCode(cl.encrypt(Buffer.from('x')), GrpcStatus.FAILED_PRECONDITION);
      assert.equal(g.wrapCalls, calls);
    } finally {
      cl.close();
      await s.close(1000);
    }
  });

  it('refuses to start on a live socket, and replaces a stale socket file', async () => {
    await assert.rejects(
      startKmsServer({ core, socketPath, socketMode: 0o600, logger, logAllValues: false, runtime }),
      (err: unknown) => err instanceof KeygateError && err.code === 'SOCKET_IN_USE',
    );
    // A stale socket: bound by a server that is gone (the file stays when the listener is killed).
    const stale = join(dir, 'stale.sock');
    const net = createServer();
    await new Promise<void>((r) => net.listen(stale, r));
    // Closing a net server unlinks its socket; recreate the file as a dead socket with a bound-then-dropped fd.
    await new Promise<void>((r) => net.close(() => r()));
    await makeDeadSocket(stale);
    assert.ok(statSync(stale).isSocket());
    const s2 = await startKmsServer({
      core,
      socketPath: stale,
      socketMode: 0o600,
      logger,
      logAllValues: false,
      runtime,
    });
    const c2 = new KmsClient(stale);
    assert.equal((await c2.status()).healthz, 'ok');
    c2.close();
    await s2.close(1000);
    assert.throws(() => statSync(stale), /ENOENT/);
    // A regular file at the socket path is refused, not deleted.
    const file = join(dir, 'file.sock');
    writeFileSync(file, 'x');
    await assert.rejects(
      startKmsServer({ core, socketPath: file, socketMode: 0o600, logger, logAllValues: false, runtime }),
    );
  });

  it('drains an in-flight call on close', async () => {
    const g = new FakeGatewayClient();
    const c = new KmsCore(testCoreOptions(g, { alg: ShimAlg.A256GCM, newDekPerEncrypt: true }));
    const path = join(dir, 'drain.sock');
    const s = await startKmsServer({
      core: c,
      socketPath: path,
      socketMode: 0o600,
      logger,
      logAllValues: false,
      runtime,
    });
    const cl = new KmsClient(path);
    await cl.status();
    g.delayMs = 200;
    const inflight = cl.encrypt(Buffer.from('late'));
    await new Promise((r) => setTimeout(r, 50));
    await s.close(5000);
    const res = await inflight;
    assert.ok(res.ciphertext.length > 0);
    cl.close();
  });
});

/** Leaves a socket file with no listener behind it, as a killed process does. */
async function makeDeadSocket(path: string): Promise<void> {
  const { spawnSync } = await import('node:child_process');
  const code = `const s=require('net').createServer().listen(${JSON.stringify(path)},()=>process.kill(process.pid,'SIGKILL'))`;
  spawnSync(process.execPath, ['-e', code]);
}
