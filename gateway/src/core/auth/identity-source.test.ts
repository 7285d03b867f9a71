import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { systemClock } from '@keygate/shared';
import { isKeygateError } from '@keygate/shared/errors';
import type { AccessTokenClaims, TokenVerifier } from './access-token.js';
import { hashApiKey } from './api-key.js';
import { identitiesSchema, identityFieldsSchema } from './identities.js';
import { configApiKeyId, IdentityDirectory, type ServiceIdentity } from './identity-directory.js';
import type { ApiKeyMatch, IdentitySource } from './identity-source.js';
import { RolePolicy } from './role-policy.js';
import { TokenAuthenticator } from './token-authenticator.js';

const cert = { identity: 'cluster-a', thumbprint: 't'.repeat(43) };
const code = (c: string) => (e: unknown) => isKeygateError(e) && e.code === c;

/** An identity source whose state the test changes, announcing like the PostgreSQL one does. */
class ChangingSource implements IdentitySource {
  live = new Map<string, { identity: ServiceIdentity; keys: Set<string> }>();
  readonly #fns = new Set<(s: string | undefined) => void>();
  async findByApiKey(_apiKey: string): Promise<ApiKeyMatch | undefined> {
    return undefined;
  }
  liveIdentity(subject: string, apiKeyId: string | undefined): ServiceIdentity | undefined {
    const e = this.live.get(subject);
    return apiKeyId !== undefined && e?.keys.has(apiKeyId) ? e.identity : undefined;
  }
  onInvalidate(fn: (s: string | undefined) => void): () => void {
    this.#fns.add(fn);
    return () => this.#fns.delete(fn);
  }
  change(name: string | undefined): void {
    for (const fn of this.#fns) fn(name);
  }
}

function verifierFor(byToken: Record<string, AccessTokenClaims>): TokenVerifier & { calls: number } {
  const v = {
    calls: 0,
    async verify(token: string) {
      v.calls++;
      const c = byToken[token];
      if (c === undefined) throw new Error('unknown');
      return c;
    },
  };
  return v;
}

const claims = (subject: string, apiKeyId?: string): AccessTokenClaims => ({
  subject,
  ...(apiKeyId === undefined ? {} : { apiKeyId }),
  roles: { 'inst-1': ['wrap', 'unwrap', 'keys:admin'] },
  certThumbprint: cert.thumbprint,
  issuedAt: 0,
  expiresAt: 4_000_000_000,
});

describe('token authenticator with an identity source', () => {
  it('takes roles from the identity as it is now, refuses revoked keys and removed cert identities, and drops cached tokens on a change', async () => {
    const src = new ChangingSource();
    const svc = (roles: ServiceIdentity['roles'], certIdentities = [cert.identity]) => ({
      identity: { name: 'svc', certIdentities, roles },
      keys: new Set(['ak-1']),
    });
    src.live.set('svc', svc({ 'inst-1': ['wrap'] }));
    src.live.set('other', {
      ...svc({ 'inst-1': ['wrap'] }),
      identity: { name: 'other', certIdentities: [cert.identity], roles: {} },
    });
    const verifier = verifierFor({
      'a.b.c': claims('svc', 'ak-1'),
      'd.e.f': claims('svc'),
      'g.h.i': claims('other', 'ak-1'),
    });
    const auth = new TokenAuthenticator({ verifier, clock: systemClock, identities: src });
    const as = (token: string) => auth.authenticate({ cert, authorization: `Bearer ${token}` });
    const p = await as('a.b.c');
    assert.deepEqual({ ...p.roles }, { 'inst-1': ['wrap'] }, 'not the token roles');
    const policy = new RolePolicy();
    assert.throws(() => policy.authorize(p, 'inst-1', 'keys:admin'), code('FORBIDDEN_ERR'));
    await as('g.h.i');
    assert.equal(auth.cachedTokens, 2);
    src.live.set('svc', svc({ 'inst-1': ['unwrap'] }));
    src.change('svc');
    assert.equal(auth.cachedTokens, 1, 'only the changed identity is dropped');
    assert.deepEqual({ ...(await as('a.b.c')).roles }, { 'inst-1': ['unwrap'] });
    await assert.rejects(as('d.e.f'), code('AUTH_TOKEN_REVOKED'));
    src.live.set('svc', svc({ 'inst-1': ['unwrap'] }, ['somebody-else']));
    await assert.rejects(as('a.b.c'), code('AUTH_TOKEN_REVOKED'));
    src.live.delete('svc');
    await assert.rejects(as('a.b.c'), code('AUTH_TOKEN_REVOKED'));
    src.change(undefined);
    assert.equal(auth.cachedTokens, 0);
    auth.close();
    src.change(undefined);
  });
});

describe('identities in the config file as an identity source', () => {
  const parsed = identitiesSchema.parse([
    {
      name: 'svc',
      apiKeyHashes: [hashApiKey('kg_a'), hashApiKey('kg_b')],
      certIdentities: ['c'],
      roles: { i: ['wrap'] },
    },
  ]);
  it('names each key by an id derived from its hash; a token is live while its identity and key are configured', async () => {
    const dir = new IdentityDirectory(parsed);
    const a = await dir.findByApiKey('kg_a');
    const b = await dir.findByApiKey('kg_b');
    assert.equal(a?.apiKeyId, configApiKeyId(hashApiKey('kg_a')));
    assert.match(a?.apiKeyId ?? '', /^cfg-[0-9a-f]{16}$/);
    assert.notEqual(a?.apiKeyId, b?.apiKeyId);
    assert.equal(await dir.findByApiKey('kg_c'), undefined);
    assert.equal(dir.liveIdentity('svc', a?.apiKeyId)?.name, 'svc');
    assert.equal(dir.liveIdentity('svc', undefined)?.name, 'svc', 'tokens of older gateways');
    assert.equal(dir.liveIdentity('svc', 'cfg-0000000000000000'), undefined);
    assert.equal(dir.liveIdentity('ghost', a?.apiKeyId), undefined);
    assert.equal(dir.liveIdentity('__proto__', undefined), undefined);
    // A restart with the key removed refuses its tokens.
    const after = new IdentityDirectory([
      { ...parsed[0], apiKeyHashes: [hashApiKey('kg_b')] } as (typeof parsed)[0],
    ]);
    assert.equal(after.liveIdentity('svc', a?.apiKeyId), undefined);
    assert.equal(after.liveIdentity('svc', b?.apiKeyId)?.name, 'svc');
  });

  it("keeps identities:admin under '*' only, and '*' for it only", () => {
    const ok = (roles: unknown) => identityFieldsSchema.safeParse({ certIdentities: ['c'], roles }).success;
    assert.ok(ok({ '*': ['identities:admin'], 'inst-1': ['wrap'] }));
    assert.ok(!ok({ '*': ['wrap'] }));
    assert.ok(!ok({ 'inst-1': ['identities:admin'] }));
    assert.ok(!ok({ '*': ['identities:admin', 'keys:admin'] }));
    assert.ok(!ok({ '**': ['identities:admin'] }));
    assert.ok(!ok({ _x: ['wrap'] }));
    const policy = new RolePolicy();
    const admin = { cert, subject: 'ops', roles: { '*': ['identities:admin'] as const } };
    policy.authorize(admin, '*', 'identities:admin');
    assert.throws(() => policy.authorize(admin, 'inst-1', 'identities:admin'), code('FORBIDDEN_ERR'));
    assert.throws(() => policy.authorize(admin, '*', 'keys:admin'), code('FORBIDDEN_ERR'));
  });
});
