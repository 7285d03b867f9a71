import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { GrpcStatus } from '@keygate/shared';
import { createLogger } from '@keygate/shared/log';
import { KmsCore } from '../core/kms-core.js';
import { testCoreOptions } from '../testing/core-options.js';
import { FakeGatewayClient } from '../testing/fake-gateway-client.js';
import type { GrpcServerKind } from './bind.js';
import { V1BETA1, V2 } from './codec/kms-messages.js';
import { type KmsServer, startKmsServer } from './kms-server.js';

/**
 * What kube-apiserver (or anything else) may put on the wire, sent as raw protobuf bytes over a
 * real UNIX socket, the same answers from both servers: extra fields of a newer KMS API are
 * ignored, malformed messages are answered INVALID_ARGUMENT (BAD_BODY_ERR) with a fixed text,
 * unknown methods UNIMPLEMENTED, messages over 4 MiB RESOURCE_EXHAUSTED, and the server keeps serving.
 */
for (const kind of ['h2', 'grpc-js'] as GrpcServerKind[])
  describe(`KMS gRPC server (${kind}): raw request bytes`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'kg-shim-wire-'));
    const socketPath = join(dir, 'kms.sock');
    const core = new KmsCore(testCoreOptions(new FakeGatewayClient()));
    const logger = createLogger({ level: 'silent' });
    let server: KmsServer;
    let raw: Client;

    /** One unary call with the request as given bytes; the answer as bytes, or the gRPC error. */
    function call(path: string, req: Buffer): Promise<Buffer> {
      return new Promise((resolve, reject) => {
        raw.makeUnaryRequest(
          path,
          (b: Buffer) => b,
          (b: Buffer) => b,
          req,
          { deadline: new Date(Date.now() + 3000) },
          (err, res) => (err || !res ? reject(err) : resolve(res)),
        );
      });
    }

    async function refused(path: string, req: Buffer): Promise<void> {
      await assert.rejects(call(path, req), (err: ServiceError) => {
        assert.equal(err.code, GrpcStatus.INVALID_ARGUMENT);
        assert.equal(err.details, 'The request body is malformed or is missing required fields.');
        assert.deepEqual((err.metadata as Metadata).get('keygate-code'), ['BAD_BODY_ERR']);
        return true;
      });
    }

    before(async () => {
      await core.refresh();
      server = await startKmsServer({
        core,
        socketPath,
        socketMode: 0o600,
        logger,
        logAllValues: false,
        runtime: { name: 'keygate-shim', version: '0.0.0-test' },
        server: kind,
      });
      raw = new Client(`unix://${socketPath}`, credentials.createInsecure(), {
        'grpc.default_authority': 'localhost',
      });
    });
    after(async () => {
      raw.close();
      await server.close(1000);
      rmSync(dir, { recursive: true, force: true });
    });

    it('ignores unknown fields of every wire type in requests', async () => {
      const extra = Buffer.from([0x80, 0x01, 0x01, 0x89, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0x92, 0x01, 0x00]);
      const seed = Buffer.from('seed-with-extras');
      const enc = V2.EncryptResponse.decode(
        await call(
          '/v2.KeyManagementService/Encrypt',
          Buffer.concat([extra, V2.EncryptRequest.encode({ plaintext: seed, uid: 'u' }), extra]),
        ),
      );
      const req = V2.DecryptRequest.encode({
        ciphertext: enc.ciphertext,
        key_id: enc.key_id,
        uid: 'u',
        annotations: { 'future.example.com': Buffer.from('x') },
      });
      const dec = V2.DecryptResponse.decode(
        await call('/v2.KeyManagementService/Decrypt', Buffer.concat([req, extra])),
      );
      assert.deepEqual(dec.plaintext, seed);
      const status = V2.StatusResponse.decode(await call('/v2.KeyManagementService/Status', extra));
      assert.equal(status.healthz, 'ok');
    });

    it('answers INVALID_ARGUMENT to malformed messages and keeps serving', async () => {
      const bad = [
        Buffer.from([0x0a, 0x05, 1, 2]), // length past the end
        Buffer.from([0x0b]), // a group
        Buffer.from([0x80]), // truncated tag
      ];
      for (const b of bad) {
        await refused('/v2.KeyManagementService/Encrypt', b);
        await refused('/v2.KeyManagementService/Decrypt', b);
        await refused('/v2.KeyManagementService/Status', b);
        await refused('/v1beta1.KeyManagementService/Version', b);
        await refused('/v1beta1.KeyManagementService/Encrypt', b);
      }
      // Wire type 7 inside an annotations entry (field 4 exists only in the v2 DecryptRequest).
      await refused('/v2.KeyManagementService/Decrypt', Buffer.from([0x22, 0x01, 0x0f]));
      const v = V1BETA1.VersionResponse.decode(
        await call(
          '/v1beta1.KeyManagementService/Version',
          V1BETA1.VersionRequest.encode({ version: 'v1beta1' }),
        ),
      );
      assert.equal(v.version, 'v1beta1');
    });

    it('answers UNIMPLEMENTED to an unknown method and RESOURCE_EXHAUSTED above 4 MiB', async () => {
      await assert.rejects(call('/v3.KeyManagementService/Encrypt', Buffer.alloc(0)), (err: ServiceError) => {
        assert.equal(err.code, GrpcStatus.UNIMPLEMENTED);
        return true;
      });
      const big = V1BETA1.EncryptRequest.encode({ version: 'v1beta1', plain: Buffer.alloc(4 * 1024 * 1024) });
      await assert.rejects(call('/v1beta1.KeyManagementService/Encrypt', big), (err: ServiceError) => {
        assert.equal(err.code, GrpcStatus.RESOURCE_EXHAUSTED);
        return true;
      });
      const status = V2.StatusResponse.decode(await call('/v2.KeyManagementService/Status', Buffer.alloc(0)));
      assert.equal(status.version, 'v2');
    });
  });
