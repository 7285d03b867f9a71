import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { type ClientHttp2Session, connect, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deadlineFrom, encodeGrpcMessage, frame, unaryMessage } from './grpc-wire.js';
import { type H2GrpcServer, type H2Method, h2GrpcServer } from './h2-server.js';

/**
 * The shim's own gRPC server, spoken to by a bare node:http2 client over a real UNIX socket, for
 * what a gRPC client library hides: headers, trailers-only errors, grpc-timeout, framing errors,
 * PING, and the GOAWAY drain. (The KMS services on it: kms-server*.test.ts and the k8s suites.)
 */
const echo = (delayMs: number): H2Method => ({
  decode: (b) => b,
  encode: (r) => r as Buffer,
  handler: (call, cb) => {
    const req = call.request as Buffer;
    if (delayMs === 0) cb(null, req);
    else setTimeout(() => cb(null, req), delayMs);
  },
});

interface Answer {
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  body: Buffer;
}

describe('h2GrpcServer on a UNIX socket', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-h2-'));
  const path = join(dir, 'h2.sock');
  let server: H2GrpcServer;
  let client: ClientHttp2Session;

  function post(p: string, body: Buffer, extra: Record<string, string> = {}): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = client.request({
        ':method': 'POST',
        ':path': p,
        'content-type': 'application/grpc',
        te: 'trailers',
        ...extra,
      });
      let headers: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      req.on('response', (h) => {
        headers = h;
      });
      req.on('trailers', (t) => {
        trailers = t;
      });
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve({ headers, trailers, body: Buffer.concat(chunks) }));
      req.on('error', reject);
      req.end(body);
    });
  }
  const statusOf = (a: Answer) => a.trailers['grpc-status'] ?? a.headers['grpc-status'];

  before(async () => {
    server = h2GrpcServer(
      new Map([
        ['/t.S/Echo', echo(0)],
        ['/t.S/Slow', echo(300)],
        [
          '/t.S/Throws',
          {
            ...echo(0),
            handler: () => {
              throw new Error('handler bug');
            },
          },
        ],
      ]),
      { maxRequestBytes: 1024 },
    );
    await server.listen(path);
    client = connect('http://localhost', { createConnection: () => netConnect(path) });
  });
  after(async () => {
    client.close();
    await server.close(100);
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers a unary call: 200, application/grpc, one framed message, grpc-status 0 in trailers', async () => {
    const a = await post('/t.S/Echo', frame(Buffer.from('hello')));
    assert.equal(a.headers[':status'], 200);
    assert.equal(a.headers['content-type'], 'application/grpc');
    assert.deepEqual(a.body, frame(Buffer.from('hello')));
    assert.equal(a.trailers['grpc-status'], '0');
  });

  it('answers errors trailers-only, with the gRPC status the spec gives', async () => {
    const cases: [string, Buffer, string][] = [
      ['/t.S/Nope', frame(Buffer.from('x')), '12'],
      ['/t.S/Echo', Buffer.alloc(0), '13'],
      ['/t.S/Echo', Buffer.concat([frame(Buffer.from('a')), frame(Buffer.from('b'))]), '13'],
      ['/t.S/Echo', Buffer.from([0, 0, 0, 0, 9, 1]), '13'],
      ['/t.S/Echo', Buffer.from([1, 0, 0, 0, 1, 1]), '12'],
      ['/t.S/Echo', frame(Buffer.alloc(1025)), '8'],
      ['/t.S/Throws', frame(Buffer.from('x')), '13'],
    ];
    for (const [p, body, want] of cases) {
      const a = await post(p, body);
      assert.equal(a.headers[':status'], 200);
      assert.equal(a.headers['grpc-status'], want, `${p} ${body.toString('hex').slice(0, 20)}`);
      assert.equal(a.body.length, 0);
    }
  });

  it('refuses what is not gRPC with plain HTTP statuses', async () => {
    const a = await post('/t.S/Echo', frame(Buffer.from('x')), { 'content-type': 'application/json' });
    assert.equal(a.headers[':status'], 415);
  });

  it('ends a slow call at its grpc-timeout with DEADLINE_EXCEEDED', async () => {
    // The handler would answer 0 after 300 ms: status 4 is the deadline's answer.
    const a = await post('/t.S/Slow', frame(Buffer.from('x')), { 'grpc-timeout': '50m' });
    assert.equal(statusOf(a), '4');
    const b = await post('/t.S/Slow', frame(Buffer.from('y')), { 'grpc-timeout': '5S' });
    assert.equal(statusOf(b), '0');
    // The longest deadline grpc-timeout can say (~11,400 years) is longer than a Node timer can
    // wait (2^31-1 ms, which Node turns into 1 ms): such a call must not end at once.
    const c = await post('/t.S/Slow', frame(Buffer.from('z')), { 'grpc-timeout': '99999999H' });
    assert.equal(statusOf(c), '0');
  });

  it('answers HTTP/2 PINGs', async () => {
    await new Promise<void>((resolve, reject) => client.ping((err) => (err ? reject(err) : resolve())));
  });

  it('drains on close: GOAWAY, the in-flight call finishes, new connections are refused', async () => {
    const c2 = connect('http://localhost', { createConnection: () => netConnect(path) });
    const goaway = new Promise<void>((resolve) => c2.once('goaway', () => resolve()));
    const req = c2.request({ ':method': 'POST', ':path': '/t.S/Slow', 'content-type': 'application/grpc' });
    const trailers = new Promise<IncomingHttpHeaders>((resolve) => req.once('trailers', resolve));
    req.resume();
    req.end(frame(Buffer.from('late')));
    await new Promise((r) => setTimeout(r, 50));
    const closing = server.close(5000);
    await goaway;
    assert.equal((await trailers)['grpc-status'], '0');
    await closing;
    c2.close();
    const refused = netConnect(path);
    await new Promise<void>((resolve) => refused.once('error', () => resolve()));
  });
});

describe('h2GrpcServer on an abstract socket (@name)', () => {
  it('listens on the abstract address and answers there', async () => {
    const name = `@keygate-h2-test-${process.pid}`;
    const s = h2GrpcServer(new Map([['/t.S/Echo', echo(0)]]));
    await s.listen(name);
    const c = connect('http://localhost', { createConnection: () => netConnect(`\0${name.slice(1)}`) });
    try {
      const req = c.request({ ':method': 'POST', ':path': '/t.S/Echo', 'content-type': 'application/grpc' });
      const trailers = new Promise<IncomingHttpHeaders>((resolve) => req.once('trailers', resolve));
      req.resume();
      req.end(frame(Buffer.from('x')));
      assert.equal((await trailers)['grpc-status'], '0');
    } finally {
      c.close();
      await s.close(100);
    }
  });
});

describe('gRPC wire helpers', () => {
  it('reads grpc-timeout in every unit and ignores invalid values', () => {
    assert.equal(deadlineFrom('2S', 1000), 3000);
    assert.equal(deadlineFrom('1H', 0), 3_600_000);
    assert.equal(deadlineFrom('3M', 0), 180_000);
    assert.equal(deadlineFrom('250m', 0), 250);
    assert.equal(deadlineFrom('5000u', 0), 5);
    assert.equal(deadlineFrom('7000000n', 0), 7);
    for (const bad of [undefined, '', '1s', '123456789S', '-1S', 'S', ['1S']]) {
      assert.equal(deadlineFrom(bad as string | undefined, 0), undefined, String(bad));
    }
  });

  it('percent-encodes grpc-message outside printable ASCII, and "%"', () => {
    assert.equal(encodeGrpcMessage('plain text.'), 'plain text.');
    assert.equal(encodeGrpcMessage('100% ü\n'), '100%25 %C3%BC%0A');
  });

  it('takes exactly one uncompressed frame', () => {
    assert.equal(unaryMessage(Buffer.alloc(0), 10).kind, 'none');
    const one = unaryMessage(frame(Buffer.from('abc')), 10);
    assert.ok(one.kind === 'message' && one.message.toString() === 'abc');
    assert.equal(unaryMessage(frame(Buffer.alloc(11)), 10).kind, 'error');
  });
});
