import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import { type Socket, connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { sourceOf } from './http/connection-guard.js';
import type { RunningGateway } from './main.js';
import { call, createGatewayFixture, type GatewayFixture, INSTANCE } from './testing/gateway-fixture.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';

/**
 * Issue 13 item 9 on a real gateway (mutual TLS, SoftHSM2): slow clients cannot hold sockets for
 * minutes (handshake, header, request and idle timeouts), and one source cannot hold more than
 * its share of connections and handshakes. The flooding source is 127.0.0.2, the normal client
 * 127.0.0.1 (both loopback, so the per-source limits tell them apart).
 */
describe('gateway connections: timeouts and per-source limits', () => {
  let fx: GatewayFixture;
  let gw: RunningGateway;
  const sockets: Socket[] = [];

  before(async () => {
    fx = await createGatewayFixture();
    const config = fx.writeConfig('connections', {
      serverExtra: [
        'headersTimeoutMs: 600',
        'requestTimeoutMs: 1200',
        'handshakeTimeoutMs: 800',
        'keepAliveTimeoutMs: 60000',
        'perSource: { connections: 40, handshakes: 8, newConnections: { ratePerSecond: 1000, burst: 1000 } }',
      ],
    });
    gw = await startGatewayFromFile(config, { logDestination: captureLines().stream });
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await gw?.close();
    fx?.softhsm.cleanup();
  });

  const port = () => gw.port;
  /** Resolves with how the socket ended: 'closed' once the server closed it. */
  const ended = (s: Socket, limitMs = 15_000): Promise<'closed' | 'still open'> =>
    new Promise((resolve) => {
      const t = setTimeout(() => resolve('still open'), limitMs);
      s.once('close', () => {
        clearTimeout(t);
        resolve('closed');
      });
    });
  const mtls = (from = '127.0.0.1'): Promise<TLSSocket> =>
    new Promise((resolve, reject) => {
      const tcp = tcpConnect({ host: '127.0.0.1', port: port(), localAddress: from });
      tcp.on('error', () => undefined);
      sockets.push(tcp);
      const s = tlsConnect({
        socket: tcp,
        ca: fx.ca.certPem,
        ...fx.clients.allowed,
        servername: 'localhost',
      });
      sockets.push(s);
      s.once('secureConnect', () => resolve(s));
      s.once('error', reject);
    });
  const healthz = (agent: Agent | false = false) =>
    call(gw.url, 'GET', '/healthz', {
      ca: fx.ca.certPem,
      client: fx.clients.allowed,
      ...(agent ? { agent } : {}),
    });

  it('closes a connection whose request headers never finish (no slowloris)', async () => {
    const s = await mtls();
    s.on('error', () => undefined);
    s.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ');
    const drip = setInterval(() => s.writable && s.write('a'), 100);
    try {
      assert.equal(await ended(s), 'closed');
    } finally {
      clearInterval(drip);
    }
  });

  it('closes a connection whose request body never finishes', async () => {
    const s = await mtls();
    s.on('error', () => undefined);
    s.write(
      `POST /api/v2/keys/k/actions/wrap HTTP/1.1\r\nHost: localhost\r\nbluemix-instance: ${INSTANCE}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{`,
    );
    const drip = setInterval(() => s.writable && s.write(' '), 100);
    try {
      assert.equal(await ended(s), 'closed');
    } finally {
      clearInterval(drip);
    }
  });

  it('closes a connection that never starts its TLS handshake', async () => {
    const s = tcpConnect({ host: '127.0.0.1', port: port() });
    sockets.push(s);
    s.on('error', () => undefined);
    assert.equal(await ended(s), 'closed');
  });

  it('an idle keep-alive connection outlives the header timeout (a request on it still works)', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1, ca: fx.ca.certPem, ...fx.clients.allowed });
    try {
      assert.equal((await healthz(agent)).status, 200);
      await new Promise((r) => setTimeout(r, 1500)); // > headersTimeoutMs and requestTimeoutMs
      const r = await healthz(agent);
      assert.equal(r.status, 200);
    } finally {
      agent.destroy();
    }
  });

  it('one source holding handshakes open cannot take more than its share; other sources are served', async () => {
    // 60 TCP connections from 127.0.0.2 that never send a ClientHello.
    const hog = Array.from({ length: 60 }, () => {
      const s = tcpConnect({ host: '127.0.0.1', port: port(), localAddress: '127.0.0.2' });
      s.on('error', () => undefined);
      sockets.push(s);
      return s;
    });
    const states = await Promise.all(hog.map((s) => ended(s, 300)));
    const closedAtOnce = states.filter((x) => x === 'closed').length;
    // At most `handshakes` (8) may wait; the server closed the rest before any TLS work.
    assert.ok(closedAtOnce >= 60 - 8, `${closedAtOnce} of 60 closed at once`);
    // The normal client (another source) connects and is answered meanwhile.
    for (let i = 0; i < 5; i++) assert.equal((await healthz()).status, 200);
    const metrics = await call(gw.url, 'GET', '/metrics', { ca: fx.ca.certPem, client: fx.clients.allowed });
    assert.match(metrics.text, /keygate_gateway_connections_refused_total\{limit="handshakes"[^}]*\} [1-9]/);
    for (const s of hog) s.destroy();
  });

  it('one source cannot hold more than its open connections', async () => {
    const held: TLSSocket[] = [];
    let refused = 0;
    for (let i = 0; i < 50; i++) {
      try {
        const s = await mtls('127.0.0.3');
        s.on('error', () => undefined);
        held.push(s);
      } catch {
        refused++;
      }
    }
    // Connections the server refused show up as failed handshakes or sockets it closed at once.
    const states = await Promise.all(held.map((s) => ended(s, 300)));
    const open = states.filter((x) => x === 'still open').length;
    assert.ok(open <= 40, `${open} connections open from one source`);
    assert.ok(refused + (50 - open) >= 10, `refused ${refused}, open ${open}`);
    assert.equal((await healthz()).status, 200);
    for (const s of held) s.destroy();
  });

  it('groups IPv6 sources by /64 and unmaps IPv4', () => {
    assert.equal(sourceOf('::ffff:10.1.2.3'), '10.1.2.3');
    assert.equal(sourceOf('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
    assert.equal(sourceOf('2001:0db8:0001:0002:ffff:ffff:ffff:ffff'), '2001:db8:1:2::/64');
    assert.equal(sourceOf('::1'), '0:0:0:0::/64');
    assert.equal(sourceOf('10.0.0.1'), '10.0.0.1');
  });
});
