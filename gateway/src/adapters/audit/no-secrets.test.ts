import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { APIKEY_GRANT_TYPE } from '@keygate/shared/api';
import { sha256, shortHash, systemRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import type { AuditEvent, AuditSink } from '../../core/audit/audit-event.js';
import { FanOutAuditSink } from '../../core/audit/fan-out-sink.js';
import { generateApiKey } from '../../core/auth/api-key.js';
import { identitiesSchema } from '../../core/auth/identities.js';
import { IdentityDirectory } from '../../core/auth/identity-directory.js';
import { TokenAuthenticator } from '../../core/auth/token-authenticator.js';
import { TokenIssuer } from '../../core/auth/token-issuer.js';
import { systemClock } from '../../core/clock.js';
import { JwtTokens } from '../jwt/jwt-tokens.js';
import { generateSigningKeyPem, loadSigningKeys } from '../jwt/signing-keys.js';
import { FileAuditSink } from './file-sink.js';
import { auditVerifyKey, KeyFileAuditSigner } from './key-file-signer.js';
import { StreamAuditSink } from './stream-sink.js';
import { verifyAuditDir } from './verify-dir.js';

describe('audit records carry no secrets', () => {
  it('no API key, token or DEK bytes reach the file log or the stream, even if a caller passes them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keygate-secrets-'));
    try {
      const cert = {
        identity: 'spiffe://keygate/cluster/c1',
        thumbprint: sha256('c1').toString('base64url'),
      };
      const { apiKey, hash } = generateApiKey(systemRandom);
      const identities = identitiesSchema.parse([
        {
          name: 'c1',
          apiKeyHashes: [hash],
          certIdentities: [cert.identity],
          roles: { i1: ['wrap', 'unwrap'] },
        },
      ]);
      const tokens = new JwtTokens({
        keys: await loadSigningKeys([generateSigningKeyPem()]),
        issuer: 'keygate',
        audience: 'keygate-gateway',
        clock: systemClock,
      });
      const issuer = new TokenIssuer({
        identities: new IdentityDirectory(identities),
        signer: tokens,
        clock: systemClock,
      });
      const token = (await issuer.issueToken({ grantType: APIKEY_GRANT_TYPE, apikey: apiKey, cert }))
        .access_token;
      const principal = await new TokenAuthenticator({ verifier: tokens, clock: systemClock }).authenticate({
        cert,
        authorization: `Bearer ${token}`,
      });
      const dek = systemRandom(32);
      const wrapped = Buffer.concat([Buffer.from([1]), systemRandom(60)]);

      const keyPem = generateKeyPairSync('ed25519')
        .privateKey.export({ format: 'pem', type: 'pkcs8' })
        .toString();
      const file = await FileAuditSink.open({
        dir,
        signer: KeyFileAuditSigner.fromPem(keyPem),
        clock: systemClock,
      });
      const stream = new PassThrough();
      let shipped = '';
      stream.on('data', (c: Buffer) => {
        shipped += c.toString('utf8');
      });
      const secondaryErrors: unknown[] = [];
      const sink: AuditSink = new FanOutAuditSink(file, [new StreamAuditSink(stream)], (e) =>
        secondaryErrors.push(e),
      );
      sink.assertAvailable();
      const base: AuditEvent = {
        time: new Date().toISOString(),
        requestId: 'r1',
        certIdentity: principal.cert.identity,
        subject: principal.subject,
        instance: 'i1',
        keyId: 'k1',
        keyVersion: 'v1',
        operation: 'wrap',
        outcome: 'success',
        latencyMs: 2,
        wrappedDekHash: shortHash(wrapped),
      };
      await sink.append({ ...base, operation: 'token.issue' });
      await sink.append(base);
      // A careless caller adding secret fields: the record format is an allow-list, so they are dropped.
      const careless = {
        ...base,
        plaintext: dek.toString('base64'),
        apikey: apiKey,
        token,
        dek,
      } as AuditEvent;
      await sink.append(careless);
      await sink.close();
      assert.deepEqual(secondaryErrors, []);

      let logged = '';
      for (const name of await readdir(dir)) logged += await readFile(join(dir, name), 'utf8');
      assert.equal(shipped.split('\n').length - 1, 3);
      assert.match(logged, /"wrappedDekHash":"[0-9a-f]{16}"/);
      const secrets = [
        apiKey,
        apiKey.slice(3),
        hash.slice(7),
        token,
        ...token.split('.'),
        dek.toString('hex'),
        dek.toString('base64'),
        dek.toString('base64url'),
        wrapped.toString('base64'),
        wrapped.toString('hex'),
      ];
      for (const text of [logged, shipped]) {
        for (const s of secrets)
          assert.equal(text.includes(s), false, `secret found in audit output: ${s.slice(0, 8)}…`);
        assert.equal(/plaintext|apikey|"token"|"dek"/.test(text), false);
      }
      assert.equal((await verifyAuditDir(dir, [auditVerifyKey(keyPem)], { requireSealed: true })).ok, true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("fan-out: availability is the primary's; a failed secondary does not fail the append", async () => {
    const failing: AuditSink = {
      assertAvailable: () => {},
      append: async () => {
        throw new Error('shipper down');
      },
      close: async () => {},
    };
    let appended = 0;
    const primary: AuditSink = {
      assertAvailable: () => {},
      append: async () => {
        appended++;
      },
      close: async () => {},
    };
    const errors: unknown[] = [];
    const fan = new FanOutAuditSink(primary, [failing], (e) => errors.push(e));
    await fan.append({ time: 't', requestId: 'r', operation: 'wrap', outcome: 'success', latencyMs: 1 });
    assert.equal(appended, 1);
    assert.equal(errors.length, 1);
    const stream = new PassThrough();
    const s = new StreamAuditSink(stream);
    stream.destroy();
    assert.throws(
      () => s.assertAvailable(),
      (e: unknown) => isKeygateError(e) && e.code === 'AUDIT_UNAVAILABLE',
    );
  });
});
