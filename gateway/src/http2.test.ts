import assert from 'node:assert/strict';
import { type ClientHttp2Session, connect } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import type { RunningGateway } from './main.js';
import {
  type ClientCert,
  call,
  createGatewayFixture,
  errorCode,
  type GatewayFixture,
  INSTANCE,
} from './testing/gateway-fixture.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';

interface H2Answer {
  readonly status: number;
  readonly text: string;
}

/**
 * `server.http2: true` on a real gateway (mutual TLS, SoftHSM2): HTTP/2 clients get the same mTLS
 * as HTTP/1.1 ones (no, a foreign or an unlisted client certificate is refused), the identity of
 * the connection's certificate holds for every stream of a session, and HTTP/1.1 clients (Key
 * Protect SDKs) on the same port are served as before.
 */
describe('gateway serving HTTP/2 and HTTP/1.1 on one port', () => {
  let fx: GatewayFixture;
  let gw: RunningGateway;
  const sessions: ClientHttp2Session[] = [];

  before(async () => {
    fx = await createGatewayFixture();
    const config = fx.writeConfig('http2', {
      serverExtra: ['http2: true', 'headersTimeoutMs: 600', 'requestTimeoutMs: 1200'],
    });
    gw = await startGatewayFromFile(config, { logDestination: captureLines().stream });
  });
  after(async () => {
    for (const s of sessions) s.destroy();
    await gw?.close();
    fx?.softhsm.cleanup();
  });

  /** A connected HTTP/2 session with `client`'s certificate (or none); rejects if refused. */
  const session = (client: ClientCert | undefined): Promise<ClientHttp2Session> =>
    new Promise((resolve, reject) => {
      const s = connect(gw.url, {
        ca: fx.ca.certPem,
        ...(client ?? {}),
        servername: 'localhost',
      });
      sessions.push(s);
      s.once('connect', () => resolve(s));
      s.once('error', reject);
      s.once('close', () => reject(new Error('closed before connect')));
    });
  const h2 = (s: ClientHttp2Session, method: string, path: string, body?: unknown): Promise<H2Answer> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = s.request({
        ':method': method,
        ':path': path,
        'bluemix-instance': INSTANCE,
        ...(payload === undefined ? {} : { 'content-type': 'application/json' }),
      });
      let status = 0;
      const chunks: Buffer[] = [];
      req.on('response', (h) => {
        status = Number(h[':status']);
      });
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve({ status, text: Buffer.concat(chunks).toString('utf8') }));
      req.on('error', reject);
      req.end(payload);
    });
  /**
   * A request on a session that may be refused at the handshake or right after it (TLS 1.3: the
   * client sees its handshake done before the server has checked its certificate, then the
   * session closes with no answer).
   */
  const refusedOrStatus = async (client: ClientCert | undefined): Promise<string | number> => {
    try {
      const s = await session(client);
      const r = await h2(s, 'GET', '/api/v2/keys');
      return r.status === 0 ? 'refused' : r.status;
    } catch {
      return 'refused';
    }
  };

  it('wraps and unwraps over HTTP/2, several streams on one session', async () => {
    const admin = await session(fx.clients.admin);
    const created = await h2(admin, 'POST', '/api/v2/keys', {
      metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
      resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'h2' }],
    });
    assert.equal(created.status, 201, created.text);
    const keyId = (JSON.parse(created.text) as { resources: { id: string }[] }).resources[0]?.id;
    assert.ok(keyId);
    const s = await session(fx.clients.allowed);
    const plaintext = Buffer.alloc(32, 7).toString('base64');
    const wraps = await Promise.all(
      [1, 2, 3, 4].map(() => h2(s, 'POST', `/api/v2/keys/${keyId}/actions/wrap`, { plaintext, aad: ['a'] })),
    );
    for (const w of wraps) {
      assert.equal(w.status, 200, w.text);
      const { ciphertext } = JSON.parse(w.text) as { ciphertext: string };
      const u = await h2(s, 'POST', `/api/v2/keys/${keyId}/actions/unwrap`, { ciphertext, aad: ['a'] });
      assert.equal(u.status, 200, u.text);
      assert.equal((JSON.parse(u.text) as { plaintext: string }).plaintext, plaintext);
    }
    // The admin's session keeps the admin's identity: its certificate is not mixed up with another.
    const denied = await h2(admin, 'POST', `/api/v2/keys/${keyId}/actions/wrap`, { plaintext });
    assert.equal(denied.status, 403, denied.text);
    // Refused before their bodies are read, more than a session's 256 streams: none stays open.
    for (let i = 0; i < 300; i++) {
      const r = await h2(admin, 'POST', `/api/v2/keys/${keyId}/actions/wrap`, { plaintext });
      assert.ok(r.status === 403 || r.status === 429, String(r.status)); // refused, then rate-limited
    }
    assert.equal((await h2(admin, 'GET', '/api/v2/keys')).status, 200);
  });

  it('refuses HTTP/2 clients without a certificate or with one from another CA', async () => {
    assert.equal(await refusedOrStatus(undefined), 'refused');
    assert.equal(await refusedOrStatus(fx.clients.foreign), 'refused');
  });

  it('answers an HTTP/2 client whose certificate is not allowed as it answers an HTTP/1.1 one', async () => {
    const h1 = await call(gw.url, 'GET', '/api/v2/keys', {
      ca: fx.ca.certPem,
      client: fx.clients.stranger,
      instance: INSTANCE,
    });
    assert.equal(await refusedOrStatus(fx.clients.stranger), h1.status);
    assert.ok(h1.status === 401 || h1.status === 403, h1.text);
    assert.ok(errorCode(h1));
  });

  it('still serves HTTP/1.1 clients (Key Protect SDKs) on the same port', async () => {
    const r = await call(gw.url, 'GET', '/api/v2/keys', {
      ca: fx.ca.certPem,
      client: fx.clients.allowed,
      instance: INSTANCE,
    });
    assert.equal(r.status, 200, r.text);
    const none = await call(gw.url, 'GET', '/api/v2/keys', { ca: fx.ca.certPem, instance: INSTANCE }).then(
      (x) => x.status,
      () => 'refused',
    );
    assert.equal(none, 'refused');
  });

  it('closes an HTTP/1.1 connection whose headers never finish (no slowloris on the HTTP/2 server)', async () => {
    const s = tlsConnect({
      host: '127.0.0.1',
      port: gw.port,
      ca: fx.ca.certPem,
      ...fx.clients.allowed,
      servername: 'localhost',
    });
    s.on('error', () => undefined);
    await new Promise((resolve) => s.once('secureConnect', resolve));
    s.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ');
    const drip = setInterval(() => s.writable && s.write('a'), 100);
    try {
      const how = await new Promise<string>((resolve) => {
        const t = setTimeout(() => resolve('still open'), 15_000);
        s.once('close', () => {
          clearTimeout(t);
          resolve('closed');
        });
      });
      assert.equal(how, 'closed');
    } finally {
      clearInterval(drip);
      s.destroy();
    }
  });

  it('closes with HTTP/2 sessions open', async () => {
    await session(fx.clients.allowed);
    await gw.close();
  });
});
