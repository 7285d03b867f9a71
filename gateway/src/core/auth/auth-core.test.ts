import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { seededRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import type { AccessTokenClaims, TokenVerifier } from './access-token.js';
import { apiKeyMatches, generateApiKey, hashApiKey } from './api-key.js';
import { identitiesSchema } from './identities.js';
import { IdentityDirectory } from './identity-directory.js';
import { OPERATION_ROLES, RolePolicy } from './role-policy.js';
import { TokenAuthenticator } from './token-authenticator.js';
import { TokenCache } from './token-cache.js';

const claims = (subject: string, expiresAt = 2_000_000_000): AccessTokenClaims => ({
  subject,
  roles: { a: ['wrap'] },
  certThumbprint: 't'.repeat(43),
  issuedAt: 0,
  expiresAt,
});

describe('API keys', () => {
  it('generates kg_ + 32 random bytes base64url with a sha256 hash, compared in constant time', () => {
    const { apiKey, hash } = generateApiKey(seededRandom('k'));
    assert.match(apiKey, /^kg_[A-Za-z0-9_-]{43}$/);
    assert.match(hash, /^sha256:[0-9a-f]{64}$/);
    assert.equal(hash, hashApiKey(apiKey));
    assert.ok(apiKeyMatches(apiKey, hash));
    assert.ok(!apiKeyMatches(`${apiKey}x`, hash));
    assert.notEqual(generateApiKey(seededRandom('other')).apiKey, apiKey);
  });
});

describe('identities config', () => {
  const base = {
    name: 'svc',
    apiKeyHashes: [hashApiKey('kg_a')],
    certIdentities: ['spiffe://keygate/cluster/x'],
    roles: { 'inst-1': ['wrap', 'unwrap'] },
  };
  it('accepts a valid list and finds identities by key', () => {
    const parsed = identitiesSchema.parse([
      base,
      { ...base, name: 'svc2', apiKeyHashes: [hashApiKey('kg_b')] },
    ]);
    const dir = new IdentityDirectory(parsed);
    assert.equal(dir.match('kg_a')?.identity.name, 'svc');
    assert.equal(dir.match('kg_b')?.identity.name, 'svc2');
    assert.equal(dir.match('kg_c'), undefined);
    assert.ok(Object.isFrozen(dir.match('kg_a')?.identity.roles));
  });
  it('rejects duplicates, unknown roles, plaintext keys, bad instance ids and unknown fields', () => {
    const bad = [
      [base, base],
      [{ ...base, name: 'x', apiKeyHashes: base.apiKeyHashes }, base],
      [{ ...base, roles: { 'inst-1': ['root'] } }],
      [{ ...base, apiKeyHashes: ['kg_plaintext'] }],
      [{ ...base, roles: { __proto__x: ['wrap'] } }],
      [{ ...base, certIdentities: [] }],
      [{ ...base, apiKey: 'kg_a' }],
    ];
    for (const b of bad) assert.equal(identitiesSchema.safeParse(b).success, false, JSON.stringify(b));
  });
});

describe('token cache', () => {
  it('evicts the least recently used entry past its bound', () => {
    const c = new TokenCache(2);
    c.set('a', claims('a'));
    c.set('b', claims('b'));
    c.get('a');
    c.set('c', claims('c'));
    assert.equal(c.size, 2);
    assert.equal(c.get('b'), undefined);
    assert.equal(c.get('a')?.subject, 'a');
    assert.equal(c.get('c')?.subject, 'c');
  });
});

describe('token authenticator (fake verifier)', () => {
  it('verifies once, then serves hits from the cache while still checking expiry', async () => {
    let calls = 0;
    const verifier: TokenVerifier = {
      verify: async () => {
        calls++;
        return claims('svc', 1000);
      },
    };
    let now = 900_000;
    const auth = new TokenAuthenticator({ verifier, clock: { now: () => new Date(now) }, leewaySeconds: 0 });
    const input = { cert: { identity: 'x', thumbprint: 't'.repeat(43) }, authorization: 'Bearer a.b.c' };
    await auth.authenticate(input);
    await auth.authenticate(input);
    assert.equal(calls, 1);
    now = 1_000_001;
    await assert.rejects(
      auth.authenticate(input),
      (e: unknown) => isKeygateError(e) && e.code === 'AUTH_TOKEN_EXPIRED',
    );
    assert.equal(auth.cachedTokens, 0);
    assert.throws(
      () => new TokenAuthenticator({ verifier, clock: { now: () => new Date() }, leewaySeconds: 31 }),
    );
  });

  it('a repeated Authorization header skips matching and hashing, not the checks', async () => {
    let calls = 0;
    let expiresAt = 2_000_000_000;
    const verifier: TokenVerifier = {
      verify: async (token) => {
        calls++;
        assert.equal(token, 'a.b.c');
        return claims('svc', expiresAt);
      },
    };
    let now = 1_000_000;
    const auth = new TokenAuthenticator({ verifier, clock: { now: () => new Date(now) }, leewaySeconds: 0 });
    const cert = { identity: 'x', thumbprint: 't'.repeat(43) };
    const code = (e: unknown) => (isKeygateError(e) ? e.code : 'not a KeygateError');
    await auth.authenticate({ cert, authorization: 'Bearer a.b.c' });
    await auth.authenticate({ cert, authorization: 'Bearer a.b.c' });
    assert.equal(calls, 1);
    // Another certificate with the same header: the binding is still checked.
    await assert.rejects(
      auth.authenticate({
        cert: { identity: 'y', thumbprint: 'u'.repeat(43) },
        authorization: 'Bearer a.b.c',
      }),
      (e: unknown) => code(e) === 'AUTH_TOKEN_CERT_MISMATCH',
    );
    await assert.rejects(auth.authenticate({ cert }), (e: unknown) => code(e) === 'AUTH_TOKEN_MISSING');
    await assert.rejects(
      auth.authenticate({ cert, authorization: 'Bearer nope' }),
      (e: unknown) => code(e) === 'AUTH_TOKEN_INVALID',
    );
    // An expired token leaves the cache; the same header again is verified again, not trusted.
    expiresAt = 1500;
    now = 1_000_000;
    await auth.authenticate({ cert, authorization: 'Bearer a.b.c' });
    now = 2_000_000_001_000;
    await assert.rejects(
      auth.authenticate({ cert, authorization: 'Bearer a.b.c' }),
      (e: unknown) => code(e) === 'AUTH_TOKEN_EXPIRED',
    );
    await assert.rejects(
      auth.authenticate({ cert, authorization: 'Bearer a.b.c' }),
      (e: unknown) => code(e) === 'AUTH_TOKEN_EXPIRED',
    );
    assert.equal(calls, 2);
  });
});

describe('role policy', () => {
  it('maps operations to roles; admin implies read', () => {
    assert.equal(OPERATION_ROLES['key.destroy'], 'keys:admin');
    assert.equal(OPERATION_ROLES['key.list'], 'keys:read');
    assert.equal(OPERATION_ROLES['key.metadata'], 'keys:read');
    assert.equal(OPERATION_ROLES['key.versions'], 'keys:read');
    const policy = new RolePolicy();
    const p = {
      cert: { identity: 'c', thumbprint: 't' },
      subject: 's',
      roles: { a: ['keys:admin'] as const, b: ['keys:read'] as const },
    };
    policy.authorize(p, 'a', 'keys:read');
    assert.throws(
      () => policy.authorize(p, 'b', 'keys:admin'),
      (e: unknown) => isKeygateError(e) && e.code === 'FORBIDDEN_ERR',
    );
    assert.throws(
      () => policy.authorize(p, 'toString', 'wrap'),
      (e: unknown) => isKeygateError(e) && e.code === 'FORBIDDEN_ERR',
    );
  });
});
