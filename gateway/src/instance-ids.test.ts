import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { systemRandom } from '@keygate/shared/crypto';
import fc from 'fast-check';
import { createSigningKeyFile } from './adapters/jwt/signing-keys.js';
import { generateApiKey } from './core/auth/api-key.js';
import type { RunningGateway } from './main.js';
import {
  type CallResult,
  type ClientCert,
  call,
  createGatewayFixture,
  errorCode,
  type GatewayFixture,
} from './testing/gateway-fixture.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';
import { fetchToken } from './testing/token-mode.js';

/** An instance id with a `:`, valid per docs/identity.md. */
const COLON = 'a:b';
/** Names an object inherits from Object.prototype: never an instance unless granted as one. */
const PROTOTYPE_NAMES = ['toString', 'constructor', 'hasOwnProperty', 'valueOf', 'isPrototypeOf'];
/** Instance ids as the shared pattern allows them (letters, digits and ._:-, max 128). */
const instanceIds = fc.oneof(
  fc.constantFrom(...PROTOTYPE_NAMES, COLON, 'a', '0', 'x.y-z:1'),
  fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/),
);
const createBody = (name: string) => ({
  metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
  resources: [{ type: 'application/vnd.ibm.kms.key+json', name }],
});

/**
 * Instance ids through the real HTTP layer (HTTPS, mutual TLS, SoftHSM2), in both access modes:
 * an instance granted as `a:b` can be used, and any name a client sends — `toString` included —
 * is answered with the operation or a 403, never a 500.
 */
describe('instance ids over HTTPS in token mode and allow-list mode', () => {
  let fx: GatewayFixture;
  let tokens: RunningGateway;
  let allowlist: RunningGateway;
  const log = captureLines();
  let appToken: string;
  let adminToken: string;

  const api = (
    gw: RunningGateway,
    method: string,
    path: string,
    o: { client: ClientCert; token?: string; instance: string; body?: unknown },
  ): Promise<CallResult> =>
    call(gw.url, method, path, {
      ca: fx.ca.certPem,
      client: o.client,
      instance: o.instance,
      ...(o.body !== undefined ? { body: o.body } : {}),
      headers: o.token === undefined ? {} : { authorization: `Bearer ${o.token}` },
    });

  before(async () => {
    fx = await createGatewayFixture();
    const signingKeyFile = join(fx.softhsm.dir, 'ids-token-key.pem');
    await createSigningKeyFile(signingKeyFile);
    const app = generateApiKey(systemRandom);
    const admin = generateApiKey(systemRandom);
    tokens = await startGatewayFromFile(
      fx.writeConfig('ids-tokens', {
        access: false,
        storeFile: join(fx.softhsm.dir, 'ids-tokens-keys.json'),
        extra: `identities:
  - name: prod-eu-1
    apiKeyHashes: ['${app.hash}']
    certIdentities: [spiffe://keygate/cluster/prod-eu-1]
    roles:
      "${COLON}": [wrap, unwrap, rewrap, keys:read]
  - name: ops-admin
    apiKeyHashes: ['${admin.hash}']
    certIdentities: [ops-admin]
    roles:
      "${COLON}": [keys:admin]
tokens:
  issuer: keygate-test
  audience: keygate-gateway
  signingKeyFiles: [${signingKeyFile}]
`,
      }),
      { logDestination: log.stream },
    );
    appToken = await fetchToken(tokens.url, fx.ca.certPem, fx.clients.allowed, app.apiKey);
    adminToken = await fetchToken(tokens.url, fx.ca.certPem, fx.clients.admin, admin.apiKey);
    allowlist = await startGatewayFromFile(
      fx.writeConfig('ids-allowlist', {
        access: false,
        storeFile: join(fx.softhsm.dir, 'ids-allowlist-keys.json'),
        extra: `access:
  clients:
    - identity: spiffe://keygate/cluster/prod-eu-1
      instances: ["${COLON}"]
      roles: [wrap, unwrap, rewrap, keys:read]
    - identity: ops-admin
      instances: ["${COLON}"]
      roles: [keys:admin, keys:read]
`,
      }),
      { logDestination: log.stream },
    );
  });

  after(async () => {
    await tokens?.close();
    await allowlist?.close();
    fx?.softhsm.cleanup();
  });

  for (const mode of ['tokens', 'allowlist'] as const) {
    const gw = () => (mode === 'tokens' ? tokens : allowlist);
    const app = () => ({ client: fx.clients.allowed, ...(mode === 'tokens' ? { token: appToken } : {}) });
    const admin = () => ({ client: fx.clients.admin, ...(mode === 'tokens' ? { token: adminToken } : {}) });

    it(`${mode}: an identity granted on instance ${COLON} creates a key, wraps and unwraps there`, async () => {
      const created = await api(gw(), 'POST', '/api/v2/keys', {
        ...admin(),
        instance: COLON,
        body: createBody(`colon-${mode}`),
      });
      assert.equal(created.status, 201, created.text);
      const keyId = String(created.json<{ resources: { id: string }[] }>().resources[0]?.id);
      const dek = systemRandom(32).toString('base64');
      const w = await api(gw(), 'POST', `/api/v2/keys/${keyId}/actions/wrap`, {
        ...app(),
        instance: COLON,
        body: { plaintext: dek, aad: ['x'] },
      });
      assert.equal(w.status, 200, w.text);
      const u = await api(gw(), 'POST', `/api/v2/keys/${keyId}/actions/unwrap`, {
        ...app(),
        instance: COLON,
        body: { ciphertext: w.json().ciphertext, aad: ['x'] },
      });
      assert.equal(u.status, 200, u.text);
      assert.equal(u.json().plaintext, dek);
      const listed = await api(gw(), 'GET', '/api/v2/keys', { ...app(), instance: COLON });
      assert.equal(listed.status, 200, listed.text);
      // The key lives in instance a:b only: instance a does not see it.
      const other = await api(gw(), 'GET', `/api/v2/keys/${keyId}`, { ...app(), instance: 'a' });
      assert.equal(other.status, 403, other.text);
    });

    it(`${mode}: Object.prototype names as instances answer 403, not 500`, async () => {
      for (const instance of PROTOTYPE_NAMES) {
        for (const who of [app(), admin()]) {
          const r = await api(gw(), 'GET', '/api/v2/keys', { ...who, instance });
          assert.equal(r.status, 403, `${instance}: ${r.text}`);
          assert.equal(errorCode(r), 'FORBIDDEN_ERR');
        }
      }
      // `__proto__` is not an instance id at all (it starts with `_`).
      const proto = await api(gw(), 'GET', '/api/v2/keys', { ...app(), instance: '__proto__' });
      assert.equal(proto.status, 400, proto.text);
      assert.equal(errorCode(proto), 'INSTANCE_HEADER_MISSING_ERR');
    });

    it(`${mode}: any valid instance id is answered with the listing (granted) or 403, never another status`, async () => {
      await fc.assert(
        fc.asyncProperty(instanceIds, async (instance) => {
          const r = await api(gw(), 'GET', '/api/v2/keys', { ...app(), instance });
          assert.equal(r.status, instance === COLON ? 200 : 403, `${instance}: ${r.text}`);
        }),
        { numRuns: 40 },
      );
    });
  }
});
