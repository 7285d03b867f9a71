import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '@keygate/shared';
import { isKeygateError } from '@keygate/shared/errors';
import { createLogger } from '@keygate/shared/log';
import type { PeerCertificate } from '../../core/auth/principal.js';
import { TokenAuthenticator } from '../../core/auth/token-authenticator.js';
import { TokenIssuer } from '../../core/auth/token-issuer.js';
import { startTestPostgres, type TestPostgres } from '../../testing/postgres.js';
import { captureLines } from '../../testing/softhsm.js';
import { JwtTokens } from '../jwt/jwt-tokens.js';
import { generateSigningKeyPem, loadSigningKeys } from '../jwt/signing-keys.js';
import { PgDatabase } from './pg-database.js';
import { PgIdentities } from './pg-identities.js';
import { poolConfig, postgresSettingsSchema } from './pg-settings.js';

const logger = createLogger({ level: 'silent', name: 'test' });
const GRANT = 'urn:ibm:params:oauth:grant-type:apikey';
const cert: PeerCertificate = { identity: 'spiffe://keygate/cluster/eu-1', thumbprint: 'a'.repeat(43) };
const otherCert: PeerCertificate = { identity: 'spiffe://keygate/cluster/us-1', thumbprint: 'b'.repeat(43) };

let pg: TestPostgres;
const open: { db: PgDatabase; ids: PgIdentities }[] = [];

before(async () => {
  pg = await startTestPostgres({ fast: true });
});
after(async () => {
  for (const r of open) {
    r.ids.close();
    await r.db.close();
  }
  await pg?.remove();
});

/** One gateway replica's identity side: its own pool, change feed and in-memory copy. */
async function replica(log = logger, signingKids?: string[]) {
  const settings = postgresSettingsSchema.parse({
    host: pg.host,
    port: pg.port,
    database: pg.database,
    user: pg.user,
    passwordFile: pg.passwordFile,
    poolSize: 4,
    reconcileInterval: 500,
  });
  const db = new PgDatabase({
    pool: poolConfig(settings, 'test.yaml'),
    describe: 'test',
    logger: log,
    reconcileMs: 500,
  });
  // The change feed announces {kind: 'all'} once its LISTEN connection is up (and after each reconnect).
  let listening = false;
  db.onChange((c) => {
    if (c.kind === 'all') listening = true;
  });
  await db.open();
  const ids = new PgIdentities(db, { logger: log, ...(signingKids ? { signingKids } : {}) });
  await ids.start();
  open.push({ db, ids });
  return { db, ids, listening: () => listening };
}

async function tokenSide(ids: PgIdentities) {
  const keys = await loadSigningKeys([generateSigningKeyPem()]);
  const jwt = new JwtTokens({ keys, issuer: 'i', audience: 'a', clock: systemClock });
  const issuer = new TokenIssuer({ identities: ids, signer: jwt, clock: systemClock });
  const auth = new TokenAuthenticator({ verifier: jwt, clock: systemClock, identities: ids });
  return { jwt, issuer, auth };
}

const code = (c: string) => (e: unknown) => isKeygateError(e) && e.code === c;

/** Polls until `ok` holds; returns the milliseconds it took. */
async function within(ms: number, what: string, ok: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (!(await ok())) {
    if (Date.now() - start > ms) assert.fail(`${what}: not within ${ms} ms`);
    await sleep(10);
  }
  return Date.now() - start;
}

async function refused(auth: TokenAuthenticator, token: string, c = cert): Promise<boolean> {
  try {
    await auth.authenticate({ cert: c, authorization: `Bearer ${token}` });
    return false;
  } catch (e) {
    if (isKeygateError(e) && e.code === 'AUTH_TOKEN_REVOKED') return true;
    throw e;
  }
}

describe('identities in PostgreSQL (real server, two replicas)', () => {
  it('issues a token for a key created in the database; stores only the key hash', async () => {
    const a = await replica();
    await a.ids.create('svc-issue', {
      certIdentities: [cert.identity],
      roles: { 'inst-1': ['wrap', 'unwrap'] },
    });
    const { apiKey, record } = await a.ids.createApiKey('svc-issue', 'eu-1 cluster');
    assert.match(apiKey, /^kg_[A-Za-z0-9_-]{43}$/);
    assert.equal(record.identity, 'svc-issue');
    assert.equal(record.label, 'eu-1 cluster');
    const { issuer, auth, jwt } = await tokenSide(a.ids);
    const issued = await issuer.issue({ grantType: GRANT, apikey: apiKey, cert });
    assert.equal(issued.subject, 'svc-issue');
    const claims = await jwt.verify(issued.response.access_token);
    assert.equal(claims.apiKeyId, record.id);
    const p = await auth.authenticate({ cert, authorization: `Bearer ${issued.response.access_token}` });
    assert.deepEqual({ ...p.roles }, { 'inst-1': ['wrap', 'unwrap'] });
    // The table holds the hash, never the key.
    const stored = pg.psql(`SELECT hash FROM keygate_api_keys WHERE id = '${record.id}'`).trim();
    assert.match(stored, /^sha256:[0-9a-f]{64}$/);
    assert.ok(!pg.psql('SELECT * FROM keygate_api_keys').includes(apiKey));
    await assert.rejects(
      issuer.issue({ grantType: GRANT, apikey: `${apiKey}x`, cert }),
      code('AUTH_APIKEY_INVALID'),
    );
    await assert.rejects(
      issuer.issue({ grantType: GRANT, apikey: apiKey, cert: otherCert }),
      code('FORBIDDEN_ERR'),
    );
    const view = await a.ids.get('svc-issue');
    assert.equal(view.apiKeys.length, 1);
    assert.ok(!JSON.stringify(view).includes('sha256:'), 'views never show hashes');
  });

  it('a key revoked through another replica is refused on this one within 1 s; so is a new token for it', async () => {
    const a = await replica();
    const b = await replica();
    await b.ids.create('svc-revoke', { certIdentities: [cert.identity], roles: { 'inst-1': ['wrap'] } });
    const { apiKey, record } = await b.ids.createApiKey('svc-revoke');
    const { issuer, auth } = await tokenSide(a.ids);
    await within(
      1000,
      'key known on replica a',
      async () => a.ids.liveIdentity('svc-revoke', record.id) !== undefined,
    );
    const token = (await issuer.issue({ grantType: GRANT, apikey: apiKey, cert })).response.access_token;
    await auth.authenticate({ cert, authorization: `Bearer ${token}` });
    assert.equal(auth.cachedTokens, 1);
    const revoked = await b.ids.revokeApiKey(record.id);
    assert.ok(revoked.revokedAt !== undefined);
    const ms = await within(1000, 'revocation heard on replica a', () => refused(auth, token));
    assert.ok(ms < 1000, `${ms} ms`);
    assert.equal(auth.cachedTokens, 0, 'the verified-token cache dropped the identity');
    await assert.rejects(
      issuer.issue({ grantType: GRANT, apikey: apiKey, cert }),
      code('AUTH_APIKEY_INVALID'),
    );
    // Revoking again keeps the first time; an unknown id is APIKEY_NOT_FOUND.
    assert.equal((await b.ids.revokeApiKey(record.id)).revokedAt, revoked.revokedAt);
    await assert.rejects(b.ids.revokeApiKey('ak-unknown'), code('APIKEY_NOT_FOUND'));
    await assert.rejects(b.ids.revokeApiKey("x' OR 1=1 --"), code('APIKEY_NOT_FOUND'));
  });

  it('roles changed through another replica apply to the next request; removed certificate identities and deleted identities are refused', async () => {
    const a = await replica();
    const b = await replica();
    await b.ids.create('svc-roles', { certIdentities: [cert.identity], roles: { 'inst-1': ['wrap'] } });
    const { apiKey } = await b.ids.createApiKey('svc-roles');
    const { issuer, auth } = await tokenSide(a.ids);
    await within(1000, 'identity known on replica a', async () => a.ids.loaded);
    let token = '';
    await within(1000, 'token issued on replica a', async () => {
      token = (await issuer.issue({ grantType: GRANT, apikey: apiKey, cert })).response.access_token;
      return !(await refused(auth, token));
    });
    const roles = async () =>
      JSON.stringify((await auth.authenticate({ cert, authorization: `Bearer ${token}` })).roles);
    assert.equal(await roles(), JSON.stringify({ 'inst-1': ['wrap'] }));
    await b.ids.update('svc-roles', {
      certIdentities: [cert.identity],
      roles: { 'inst-1': ['unwrap'], 'inst-2': ['keys:read'] },
    });
    await within(
      1000,
      'role change heard',
      async () => (await roles()) === JSON.stringify({ 'inst-1': ['unwrap'], 'inst-2': ['keys:read'] }),
    );
    await b.ids.update('svc-roles', {
      certIdentities: [otherCert.identity],
      roles: { 'inst-1': ['unwrap'] },
    });
    await within(1000, 'certificate identity removal heard', () => refused(auth, token));
    await b.ids.update('svc-roles', { certIdentities: [cert.identity], roles: { 'inst-1': ['unwrap'] } });
    await within(1000, 'certificate identity back', async () => !(await refused(auth, token)));
    await b.ids.delete('svc-roles');
    await within(1000, 'deletion heard', () => refused(auth, token));
    await assert.rejects(b.ids.get('svc-roles'), code('IDENTITY_NOT_FOUND'));
    assert.equal(pg.psql("SELECT count(*) FROM keygate_api_keys WHERE identity = 'svc-roles'").trim(), '0');
  });

  it('refuses tokens that name no API key, and everything before the first load (fail closed)', async () => {
    const a = await replica();
    await a.ids.create('svc-legacy', { certIdentities: [cert.identity], roles: { 'inst-1': ['wrap'] } });
    const { jwt, auth } = await tokenSide(a.ids);
    const now = Math.floor(Date.now() / 1000);
    const legacy = await jwt.sign({
      subject: 'svc-legacy',
      roles: { 'inst-1': ['wrap'] },
      certThumbprint: cert.thumbprint,
      issuedAt: now,
      expiresAt: now + 60,
    });
    await assert.rejects(
      auth.authenticate({ cert, authorization: `Bearer ${legacy}` }),
      code('AUTH_TOKEN_REVOKED'),
    );
    const { record } = await a.ids.createApiKey('svc-legacy');
    const notStarted = new PgIdentities(a.db, { logger });
    assert.equal(notStarted.loaded, false);
    assert.equal(notStarted.liveIdentity('svc-legacy', record.id), undefined);
    assert.notEqual(a.ids.liveIdentity('svc-legacy', record.id), undefined);
    assert.equal(a.ids.liveIdentity('svc-legacy', undefined), undefined);
  });

  it('validates names, roles and labels, and reports exists / not found', async () => {
    const a = await replica();
    const ok = { certIdentities: [cert.identity], roles: { 'inst-1': ['wrap' as const] } };
    await a.ids.create('svc-valid', ok);
    await assert.rejects(a.ids.create('svc-valid', ok), code('IDENTITY_EXISTS'));
    await assert.rejects(a.ids.create('-bad name', ok), code('INVALID_FIELD_ERR'));
    await assert.rejects(
      a.ids.create('svc-x', { certIdentities: [cert.identity], roles: { 'inst-1': ['identities:admin'] } }),
      code('INVALID_FIELD_ERR'),
    );
    await assert.rejects(
      a.ids.create('svc-x', { certIdentities: [cert.identity], roles: { '*': ['wrap'] } }),
      code('INVALID_FIELD_ERR'),
    );
    await assert.rejects(a.ids.create('svc-x', { certIdentities: [], roles: {} }), code('INVALID_FIELD_ERR'));
    await assert.rejects(a.ids.update('nobody', ok), code('IDENTITY_NOT_FOUND'));
    await assert.rejects(a.ids.delete('nobody'), code('IDENTITY_NOT_FOUND'));
    await assert.rejects(a.ids.createApiKey('nobody'), code('IDENTITY_NOT_FOUND'));
    await assert.rejects(a.ids.createApiKey('svc-valid', 'x'.repeat(201)), code('INVALID_FIELD_ERR'));
    const admin = await a.ids.create('ops', {
      certIdentities: ['ops'],
      roles: { '*': ['identities:admin'] },
    });
    assert.deepEqual({ ...admin.roles }, { '*': ['identities:admin'] });
    const names = (await a.ids.list()).map((i) => i.name);
    assert.ok(names.includes('svc-valid') && names.includes('ops'));
  });

  it('records token signing key ids and warns about keys another replica has and this one lacks', async () => {
    const lines = captureLines();
    const warnLog = createLogger({ level: 'info', name: 'test', destination: lines.stream });
    const a = await replica(logger, ['kid-shared', 'kid-new']);
    await within(
      2000,
      'kids announced',
      async () =>
        pg.psql("SELECT count(*) FROM keygate_signing_keys WHERE kid IN ('kid-shared', 'kid-new')").trim() ===
        '2',
    );
    const b = await replica(warnLog);
    assert.deepEqual(await b.ids.announceSigningKeys(['kid-shared']), ['kid-new']);
    assert.ok(lines.lines.some((l) => String(l.msg).includes('another replica uses token signing keys')));
    assert.deepEqual(await a.ids.announceSigningKeys(['kid-shared', 'kid-new']), []);
  });

  it('keeps checking tokens with the last state while the database is down, and reloads everything after it is back', async () => {
    const a = await replica();
    await a.ids.create('svc-outage', { certIdentities: [cert.identity], roles: { 'inst-1': ['wrap'] } });
    const { apiKey, record } = await a.ids.createApiKey('svc-outage');
    const { issuer, auth } = await tokenSide(a.ids);
    const token = (await issuer.issue({ grantType: GRANT, apikey: apiKey, cert })).response.access_token;
    await within(2000, 'change feed listening', async () => a.listening());
    await a.ids.settled();
    // A change written without any announcement (by hand, say) is not heard...
    pg.psql(`UPDATE keygate_api_keys SET revoked_at = now() WHERE id = '${record.id}'`);
    await sleep(700); // longer than the periodic re-read (500 ms): it reads announced changes only
    assert.equal(await refused(auth, token), false);
    pg.stop('immediate');
    try {
      // No database: tokens already issued still work with the last state; new ones cannot be issued.
      assert.equal(
        (await auth.authenticate({ cert, authorization: `Bearer ${token}` })).subject,
        'svc-outage',
      );
      await assert.rejects(
        issuer.issue({ grantType: GRANT, apikey: apiKey, cert }),
        code('STORE_UNAVAILABLE'),
      );
    } finally {
      pg.start();
    }
    // ...until the change feed reconnects, which reloads everything.
    await within(15_000, 'full reload after reconnect', () => refused(auth, token));
  });
});
