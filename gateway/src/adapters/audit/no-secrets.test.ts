import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { systemClock } from '@keygate/shared';
import { APIKEY_GRANT_TYPE } from '@keygate/shared/api';
import { sha256, shortHash, systemRandom } from '@keygate/shared/crypto';
import type { AuditEvent } from '../../core/audit/audit-event.js';
import { generateApiKey } from '../../core/auth/api-key.js';
import { identitiesSchema } from '../../core/auth/identities.js';
import { IdentityDirectory } from '../../core/auth/identity-directory.js';
import { TokenAuthenticator } from '../../core/auth/token-authenticator.js';
import { TokenIssuer } from '../../core/auth/token-issuer.js';
import { JwtTokens } from '../jwt/jwt-tokens.js';
import { generateSigningKeyPem, loadSigningKeys } from '../jwt/signing-keys.js';
import { FileAuditAnchorStore } from './anchor-file.js';
import { FileAuditSink } from './file-sink.js';
import { auditVerifyKey, KeyFileAuditSigner } from './key-file-signer.js';
import { AuditStreamCopy } from './stream-copy.js';
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
      const stream = new PassThrough();
      let shipped = '';
      stream.on('data', (c: Buffer) => {
        shipped += c.toString('utf8');
      });
      const copyErrors: unknown[] = [];
      const copy = new AuditStreamCopy(stream, { onError: (e) => copyErrors.push(e) });
      const sink = await FileAuditSink.open({
        dir,
        signer: KeyFileAuditSigner.fromPem(keyPem),
        clock: systemClock,
        anchors: new FileAuditAnchorStore(`${dir}.anchor.json`),
        onWritten: (text) => copy.write(text),
      });
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
      assert.deepEqual(copyErrors, []);

      let logged = '';
      for (const name of await readdir(dir)) logged += await readFile(join(dir, name), 'utf8');
      // The stream carries the log itself: start, 3 events, close checkpoint, byte for byte.
      assert.equal(shipped, logged);
      assert.equal(shipped.split('\n').length - 1, 5);
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
      await rm(`${dir}.anchor.json`, { force: true });
    }
  });

  it('a failed or stalled stream never fails an append: the copy reports once and drops lines', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keygate-copy-'));
    try {
      const keyPem = generateKeyPairSync('ed25519')
        .privateKey.export({ format: 'pem', type: 'pkcs8' })
        .toString();
      const errors: string[] = [];
      // A stream nobody reads, with a tiny limit: stalled after the first write.
      const stalled = new PassThrough({ highWaterMark: 16 });
      const stalledCopy = new AuditStreamCopy(stalled, {
        onError: (e) => errors.push(`stalled:${String(e.detail?.reason)}`),
        maxBufferedBytes: 100,
      });
      const broken = new PassThrough();
      const brokenCopy = new AuditStreamCopy(broken, { onError: (e) => errors.push(`broken:${e.code}`) });
      broken.destroy(new Error('shipper down'));
      const sink = await FileAuditSink.open({
        dir,
        signer: KeyFileAuditSigner.fromPem(keyPem),
        clock: systemClock,
        anchors: new FileAuditAnchorStore(`${dir}.anchor.json`),
        onWritten: (text) => {
          stalledCopy.write(text);
          brokenCopy.write(text);
        },
      });
      const event: AuditEvent = {
        time: 't',
        requestId: 'r',
        operation: 'wrap',
        outcome: 'success',
        latencyMs: 1,
      };
      for (let i = 0; i < 5; i++) await sink.append({ ...event, requestId: `r${i}` });
      await sink.close();
      assert.equal((await verifyAuditDir(dir, [auditVerifyKey(keyPem)], { requireSealed: true })).events, 5);
      assert.ok(stalledCopy.dropped >= 4, `dropped ${stalledCopy.dropped}`);
      assert.equal(errors.filter((e) => e.startsWith('stalled:')).length, 1);
      assert.deepEqual(
        errors.filter((e) => e.startsWith('broken:')),
        ['broken:AUDIT_UNAVAILABLE'],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
      await rm(`${dir}.anchor.json`, { force: true });
    }
  });
});
