import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Clock } from '@keygate/shared';
import { APIKEY_GRANT_TYPE, tokenResponse } from '@keygate/shared/api';
import { sha256, systemRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, SignJWT } from 'jose';
import { generateApiKey } from '../../core/auth/api-key.js';
import { identitiesSchema } from '../../core/auth/identities.js';
import { IdentityDirectory } from '../../core/auth/identity-directory.js';
import type { PeerCertificate } from '../../core/auth/principal.js';
import { RolePolicy } from '../../core/auth/role-policy.js';
import { TokenAuthenticator } from '../../core/auth/token-authenticator.js';
import { TokenIssuer } from '../../core/auth/token-issuer.js';
import { JwtTokens } from './jwt-tokens.js';
import {
  createSigningKeyFile,
  generateSigningKeyPem,
  loadSigningKeys,
  readSigningKeyFiles,
} from './signing-keys.js';
import { tokensSchema } from './token-settings.js';

const cert = (identity: string): PeerCertificate => ({
  identity,
  thumbprint: sha256(`der of ${identity}`).toString('base64url'),
});
const PROD = cert('spiffe://keygate/cluster/prod-eu-1');
const OTHER = cert('spiffe://keygate/cluster/dev-1');

class FakeClock implements Clock {
  ms = Date.UTC(2025, 0, 1, 12, 0, 0);
  now(): Date {
    return new Date(this.ms);
  }
}

async function rejectsWith(p: Promise<unknown> | (() => unknown), code: string): Promise<void> {
  await assert.rejects(
    async () => (typeof p === 'function' ? p() : p),
    (err: unknown) => isKeygateError(err) && err.code === code,
  );
}

describe('identity and tokens (real jose, real key files)', () => {
  let dir: string;
  const clock = new FakeClock();
  const key = generateApiKey(systemRandom);
  const adminKey = generateApiKey(systemRandom);
  const identities = identitiesSchema.parse([
    {
      name: 'prod-eu-1',
      apiKeyHashes: [key.hash],
      certIdentities: [PROD.identity],
      roles: { 'inst-a': ['wrap', 'unwrap'] },
    },
    {
      name: 'ops',
      apiKeyHashes: [adminKey.hash],
      certIdentities: [PROD.identity],
      roles: { 'inst-a': ['keys:admin'] },
    },
  ]);
  let tokens: JwtTokens;
  let issuer: TokenIssuer;
  let auth: TokenAuthenticator;
  const policy = new RolePolicy();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'keygate-jwt-'));
    const file = join(dir, 'token-key.pem');
    const { kid } = await createSigningKeyFile(file);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const keys = await readSigningKeyFiles([file]);
    assert.equal(keys[0]?.kid, kid);
    tokens = new JwtTokens({ keys, issuer: 'keygate', audience: 'keygate-gateway', clock });
    issuer = new TokenIssuer({ identities: new IdentityDirectory(identities), signer: tokens, clock });
    auth = new TokenAuthenticator({ verifier: tokens, clock });
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  const issue = (apikey: string, c: PeerCertificate = PROD) =>
    issuer.issueToken({ grantType: APIKEY_GRANT_TYPE, apikey, cert: c });

  it('API key -> token -> authenticate -> authorize', async () => {
    const res = await issue(key.apiKey);
    tokenResponse.parse(res);
    assert.equal(res.token_type, 'Bearer');
    assert.equal(res.expires_in, 600);
    assert.equal(res.expiration, clock.ms / 1000 + 600);
    const header = decodeProtectedHeader(res.access_token);
    assert.equal(header.alg, 'ES256');
    assert.equal(header.kid, tokens.signingKid);
    const claims = decodeJwt(res.access_token);
    assert.equal(claims.sub, 'prod-eu-1');
    assert.equal(claims.iss, 'keygate');
    assert.equal(claims.aud, 'keygate-gateway');
    assert.deepEqual(claims.cnf, { 'x5t#S256': PROD.thumbprint });

    const principal = await auth.authenticate({ cert: PROD, authorization: `Bearer ${res.access_token}` });
    assert.equal(principal.subject, 'prod-eu-1');
    assert.deepEqual(principal.roles['inst-a'], ['wrap', 'unwrap']);
    policy.authorize(principal, 'inst-a', 'wrap');
    policy.authorize(principal, 'inst-a', 'unwrap');
    // A second call is a cache hit and gives the same answer.
    assert.equal(auth.cachedTokens, 1);
    const again = await auth.authenticate({ cert: PROD, authorization: `bearer ${res.access_token}` });
    assert.equal(again.subject, 'prod-eu-1');
  });

  it('rejects a wrong API key, a bad grant type and a certificate not allowed for the identity', async () => {
    await rejectsWith(issue(generateApiKey(systemRandom).apiKey), 'AUTH_APIKEY_INVALID');
    await rejectsWith(issue(''), 'AUTH_APIKEY_INVALID');
    await rejectsWith(issue(`${key.apiKey}x`), 'AUTH_APIKEY_INVALID');
    await rejectsWith(
      issuer.issueToken({ grantType: 'password', apikey: key.apiKey, cert: PROD }),
      'AUTH_GRANT_TYPE_INVALID',
    );
    await rejectsWith(
      issuer.issueToken({ grantType: undefined, apikey: key.apiKey, cert: PROD }),
      'AUTH_GRANT_TYPE_INVALID',
    );
    await rejectsWith(issue(key.apiKey, OTHER), 'FORBIDDEN_ERR');
  });

  it('rejects an expired token (injected clock), also when it was cached', async () => {
    const res = await issue(key.apiKey);
    const bearer = `Bearer ${res.access_token}`;
    await auth.authenticate({ cert: PROD, authorization: bearer }); // cached now
    const start = clock.ms;
    try {
      clock.ms = start + 600_000 + 4_000; // inside the 5 s leeway
      await auth.authenticate({ cert: PROD, authorization: bearer });
      clock.ms = start + 600_000 + 6_000;
      await rejectsWith(auth.authenticate({ cert: PROD, authorization: bearer }), 'AUTH_TOKEN_EXPIRED');
      // Uncached path: jose's own expiry check, translated.
      const fresh = new TokenAuthenticator({ verifier: tokens, clock, cacheSize: 0 });
      await rejectsWith(fresh.authenticate({ cert: PROD, authorization: bearer }), 'AUTH_TOKEN_EXPIRED');
    } finally {
      clock.ms = start;
    }
  });

  it('denies a token for instance A on instance B, and a token missing the role', async () => {
    const principal = await auth.authenticate({
      cert: PROD,
      authorization: `Bearer ${(await issue(key.apiKey)).access_token}`,
    });
    await rejectsWith(() => policy.authorize(principal, 'inst-b', 'wrap'), 'FORBIDDEN_ERR');
    await rejectsWith(() => policy.authorize(principal, 'inst-a', 'rewrap'), 'FORBIDDEN_ERR');
    await rejectsWith(() => policy.authorize(principal, 'inst-a', 'keys:read'), 'FORBIDDEN_ERR');
    await rejectsWith(() => policy.authorize(principal, '__proto__', 'wrap'), 'FORBIDDEN_ERR');
    const admin = await auth.authenticate({
      cert: PROD,
      authorization: `Bearer ${(await issue(adminKey.apiKey)).access_token}`,
    });
    policy.authorize(admin, 'inst-a', 'keys:admin');
    policy.authorize(admin, 'inst-a', 'keys:read'); // admin implies read
    await rejectsWith(() => policy.authorize(admin, 'inst-a', 'wrap'), 'FORBIDDEN_ERR');
  });

  it('rejects a token presented with another client certificate, cached or not', async () => {
    const bearer = `Bearer ${(await issue(key.apiKey)).access_token}`;
    const uncached = new TokenAuthenticator({ verifier: tokens, clock });
    await rejectsWith(
      uncached.authenticate({ cert: OTHER, authorization: bearer }),
      'AUTH_TOKEN_CERT_MISMATCH',
    );
    await auth.authenticate({ cert: PROD, authorization: bearer });
    await rejectsWith(auth.authenticate({ cert: OTHER, authorization: bearer }), 'AUTH_TOKEN_CERT_MISMATCH');
  });

  it('rejects missing, malformed, tampered, foreign-key, wrong-issuer and wrong-audience tokens', async () => {
    await rejectsWith(auth.authenticate({ cert: PROD }), 'AUTH_TOKEN_MISSING');
    await rejectsWith(auth.authenticate({ cert: PROD, authorization: 'Basic abc' }), 'AUTH_TOKEN_INVALID');
    await rejectsWith(
      auth.authenticate({ cert: PROD, authorization: 'Bearer not-a-jwt' }),
      'AUTH_TOKEN_INVALID',
    );
    const token = (await issue(key.apiKey)).access_token;
    const [h, p, s] = token.split('.');
    const payload = JSON.parse(Buffer.from(p ?? '', 'base64url').toString());
    payload.keygate_roles = { 'inst-b': ['wrap'] };
    const forged = `${h}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${s}`;
    await rejectsWith(
      auth.authenticate({ cert: PROD, authorization: `Bearer ${forged}` }),
      'AUTH_TOKEN_INVALID',
    );

    const [foreignKey] = await loadSigningKeys([generateSigningKeyPem()]);
    assert.ok(foreignKey);
    for (const opts of [
      { keys: [foreignKey], issuer: 'keygate', audience: 'keygate-gateway' },
      { keys: await keysOf(dir), issuer: 'someone-else', audience: 'keygate-gateway' },
      { keys: await keysOf(dir), issuer: 'keygate', audience: 'another-service' },
    ]) {
      const other = new JwtTokens({ ...opts, clock });
      const t = await other.sign({
        subject: 'prod-eu-1',
        roles: { 'inst-a': ['wrap'] },
        certThumbprint: PROD.thumbprint,
        issuedAt: clock.ms / 1000,
        expiresAt: clock.ms / 1000 + 60,
      });
      await rejectsWith(
        auth.authenticate({ cert: PROD, authorization: `Bearer ${t}` }),
        'AUTH_TOKEN_INVALID',
      );
    }
    // An unsigned-claims token signed with HS256 is refused (algorithm pinned to ES256).
    const hs = await new SignJWT({ sub: 'x' })
      .setProtectedHeader({ alg: 'HS256', kid: tokens.signingKid })
      .sign(new Uint8Array(32));
    await rejectsWith(auth.authenticate({ cert: PROD, authorization: `Bearer ${hs}` }), 'AUTH_TOKEN_INVALID');
  });

  it('publishes a JWKS and keeps old tokens valid across a key rollover', async () => {
    const oldToken = (await issue(key.apiKey)).access_token;
    const newFile = join(dir, 'token-key-2.pem');
    await createSigningKeyFile(newFile);
    const rolled = new JwtTokens({
      keys: await readSigningKeyFiles([newFile, join(dir, 'token-key.pem')]),
      issuer: 'keygate',
      audience: 'keygate-gateway',
      clock,
    });
    const jwks = rolled.jwks();
    assert.equal(jwks.keys.length, 2);
    for (const k of jwks.keys) {
      assert.deepEqual(Object.keys(k).sort(), ['alg', 'crv', 'kid', 'kty', 'use', 'x', 'y']);
      assert.equal('d' in k, false);
    }
    assert.equal(jwks.keys[0]?.kid, rolled.signingKid);
    const rolledAuth = new TokenAuthenticator({ verifier: rolled, clock });
    const p1 = await rolledAuth.authenticate({ cert: PROD, authorization: `Bearer ${oldToken}` });
    assert.equal(p1.subject, 'prod-eu-1');
    const rolledIssuer = new TokenIssuer({
      identities: new IdentityDirectory(identities),
      signer: rolled,
      clock,
    });
    const newToken = (
      await rolledIssuer.issueToken({ grantType: APIKEY_GRANT_TYPE, apikey: key.apiKey, cert: PROD })
    ).access_token;
    assert.equal(decodeProtectedHeader(newToken).kid, rolled.signingKid);
    // A third party can verify with the published JWKS alone.
    const { payload } = await jwtVerify(newToken, createLocalJWKSet(jwks), { currentDate: clock.now() });
    assert.equal(payload.sub, 'prod-eu-1');
    // The old replica (old key only) refuses tokens signed by the new key: roll the JWKS out first.
    await rejectsWith(
      auth.authenticate({ cert: PROD, authorization: `Bearer ${newToken}` }),
      'AUTH_TOKEN_INVALID',
    );
  });

  it('refuses key files that are not EC P-256 and parses the tokens settings', async () => {
    await rejectsWith(loadSigningKeys(['not a pem']), 'CONFIG_INVALID');
    const { generateKeyPairSync } = await import('node:crypto');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      format: 'pem',
      type: 'pkcs8',
    });
    await rejectsWith(loadSigningKeys([rsa.toString()]), 'CONFIG_INVALID');
    await assert.rejects(createSigningKeyFile(join(dir, 'token-key.pem')), { code: 'EEXIST' });
    assert.match(await readFile(join(dir, 'token-key.pem'), 'utf8'), /BEGIN PRIVATE KEY/);
    const s = tokensSchema.parse({ signingKeyFiles: ['/k.pem'], lifetime: '5m' });
    assert.equal(s.lifetime, 300_000);
    assert.equal(s.leeway, 5_000);
    assert.equal(s.issuer, 'keygate');
    assert.equal(tokensSchema.safeParse({ signingKeyFiles: ['/k.pem'], leeway: '31s' }).success, false);
    assert.equal(tokensSchema.safeParse({ signingKeyFiles: [] }).success, false);
  });
});

async function keysOf(dir: string) {
  return readSigningKeyFiles([join(dir, 'token-key.pem')]);
}
