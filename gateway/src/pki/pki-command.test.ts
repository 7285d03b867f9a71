import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { PKI_FILES, runPkiCommand } from './pki-command.js';

async function pki(...args: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await runPkiCommand(args, (l) => lines.push(l));
  return { code, lines };
}

interface Handshake {
  readonly authorized: boolean;
  readonly peerUri: string | undefined;
  readonly error?: string;
}

/** A TLS server that requires a client certificate of `caPem`; the result of one client connection. */
async function handshake(
  server: { cert: string; key: string; ca: string },
  client: { cert?: string; key?: string; ca: string; servername?: string; host?: string },
): Promise<Handshake> {
  const seen: { uri?: string } = {};
  const srv = createServer(
    { cert: server.cert, key: server.key, ca: server.ca, requestCert: true, rejectUnauthorized: true },
    (s: TLSSocket) => {
      const san = s.getPeerCertificate().subjectaltname ?? '';
      seen.uri = /URI:([^,]+)/.exec(san)?.[1];
      s.end('hello\n');
    },
  );
  srv.on('tlsClientError', () => {});
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as AddressInfo).port;
  try {
    return await new Promise<Handshake>((resolve) => {
      const c = connect({
        host: client.host ?? '127.0.0.1',
        port,
        ca: client.ca,
        cert: client.cert,
        key: client.key,
        servername: client.servername,
        rejectUnauthorized: true,
      });
      let data = '';
      c.setEncoding('utf8');
      c.on('data', (d: string) => {
        data += d;
      });
      c.on('end', () => resolve({ authorized: data === 'hello\n' && c.authorized, peerUri: seen.uri }));
      c.on('error', (err) => resolve({ authorized: false, peerUri: seen.uri, error: err.message }));
    });
  } finally {
    await new Promise<void>((r) => srv.close(() => r()));
  }
}

describe('keygate-gateway pki', () => {
  let dir = '';
  const ca = () => join(dir, 'ca');
  const srv = () => join(dir, 'gateway');
  const cli = () => join(dir, 'prod-eu-1');
  const read = (d: string, f: string) => readFileSync(join(d, f), 'utf8');

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'keygate-pki-'));
    assert.equal((await pki('ca', '--out', ca(), '--cn', 'keygate test CA', '--days', '30')).code, 0);
    const s = await pki(
      'server',
      '--ca',
      ca(),
      '--out',
      srv(),
      '--dns',
      'localhost,gateway.keygate.svc',
      '--ip',
      '127.0.0.1',
    );
    assert.equal(s.code, 0, s.lines.join('\n'));
    const c = await pki('client', '--ca', ca(), '--out', cli(), '--cluster', 'prod-eu-1');
    assert.equal(c.code, 0, c.lines.join('\n'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('writes PEM files with private keys mode 0600 and a copy of the CA next to each leaf', () => {
    for (const [d, cert, key] of [
      [ca(), PKI_FILES.caCert, PKI_FILES.caKey],
      [srv(), PKI_FILES.serverCert, PKI_FILES.serverKey],
      [cli(), PKI_FILES.clientCert, PKI_FILES.clientKey],
    ] as const) {
      assert.equal(statSync(join(d, key)).mode & 0o777, 0o600, `${key} mode`);
      assert.equal(statSync(join(d, cert)).mode & 0o777, 0o644, `${cert} mode`);
      assert.match(read(d, key), /^-----BEGIN PRIVATE KEY-----\n/);
    }
    assert.equal(read(srv(), PKI_FILES.caCert), read(ca(), PKI_FILES.caCert));
    assert.equal(read(cli(), PKI_FILES.caCert), read(ca(), PKI_FILES.caCert));
    const caX = new X509Certificate(read(ca(), PKI_FILES.caCert));
    assert.ok(caX.ca);
    assert.equal(caX.subject, 'CN=keygate test CA');
    const days = (Date.parse(caX.validTo) - Date.now()) / 86_400_000;
    assert.ok(days > 29 && days <= 30, `--days 30 gave ${days}`);
  });

  it('issues a server certificate for the names given and a client certificate with the SPIFFE identity', () => {
    const caX = new X509Certificate(read(ca(), PKI_FILES.caCert));
    const server = new X509Certificate(read(srv(), PKI_FILES.serverCert));
    const client = new X509Certificate(read(cli(), PKI_FILES.clientCert));
    assert.ok(server.verify(caX.publicKey) && client.verify(caX.publicKey));
    assert.equal(server.checkHost('gateway.keygate.svc'), 'gateway.keygate.svc');
    assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(client.subjectAltName, 'URI:spiffe://keygate/cluster/prod-eu-1');
    assert.equal(client.subject, 'CN=prod-eu-1');
    assert.deepEqual(server.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.deepEqual(client.keyUsage, ['1.3.6.1.5.5.7.3.2']);
  });

  it('makes files usable for mutual TLS: a real handshake with a required client certificate', async () => {
    const caPem = read(ca(), PKI_FILES.caCert);
    const server = {
      cert: read(srv(), PKI_FILES.serverCert),
      key: read(srv(), PKI_FILES.serverKey),
      ca: caPem,
    };
    const ok = await handshake(server, {
      cert: read(cli(), PKI_FILES.clientCert),
      key: read(cli(), PKI_FILES.clientKey),
      ca: read(cli(), PKI_FILES.caCert),
      servername: 'localhost',
    });
    assert.equal(ok.error, undefined);
    assert.ok(ok.authorized);
    assert.equal(ok.peerUri, 'spiffe://keygate/cluster/prod-eu-1');

    const viaIp = await handshake(server, {
      cert: read(cli(), PKI_FILES.clientCert),
      key: read(cli(), PKI_FILES.clientKey),
      ca: caPem,
    });
    assert.ok(viaIp.authorized, viaIp.error);

    const noCert = await handshake(server, { ca: caPem, servername: 'localhost' });
    assert.equal(noCert.authorized, false, 'a client without a certificate is refused');

    // A client certificate from another CA is refused too.
    const other = join(dir, 'other');
    assert.equal((await pki('ca', '--out', join(other, 'ca'))).code, 0);
    assert.equal((await pki('client', '--ca', join(other, 'ca'), '--out', other, '--cluster', 'x')).code, 0);
    const foreign = await handshake(server, {
      cert: read(other, PKI_FILES.clientCert),
      key: read(other, PKI_FILES.clientKey),
      ca: caPem,
      servername: 'localhost',
    });
    assert.equal(foreign.authorized, false);
  });

  it('accepts a CA bundle (old + new CA) during a rotation', async () => {
    const next = join(dir, 'ca-next');
    assert.equal((await pki('ca', '--out', next, '--cn', 'keygate CA 2')).code, 0);
    const nextClient = join(dir, 'client-next');
    assert.equal((await pki('client', '--ca', next, '--out', nextClient, '--cluster', 'prod-eu-1')).code, 0);
    const bundle = read(ca(), PKI_FILES.caCert) + read(next, PKI_FILES.caCert);
    const server = {
      cert: read(srv(), PKI_FILES.serverCert),
      key: read(srv(), PKI_FILES.serverKey),
      ca: bundle,
    };
    for (const c of [cli(), nextClient]) {
      const r = await handshake(server, {
        cert: read(c, PKI_FILES.clientCert),
        key: read(c, PKI_FILES.clientKey),
        ca: read(ca(), PKI_FILES.caCert),
        servername: 'localhost',
      });
      assert.ok(r.authorized, `${c}: ${r.error}`);
    }
    const bundleFile = join(dir, 'bundle.pem');
    writeFileSync(bundleFile, bundle);
    const shown = await pki('show', bundleFile);
    assert.equal(shown.code, 0);
    assert.ok(shown.lines.includes(`${bundleFile} [2/2]:`));
  });

  it('refuses to overwrite existing files', async () => {
    const before = read(ca(), PKI_FILES.caKey);
    const r = await pki('ca', '--out', ca());
    assert.equal(r.code, 1);
    assert.match(r.lines.join('\n'), /exists; refusing to overwrite/);
    const again = await pki('client', '--ca', ca(), '--out', cli(), '--cluster', 'prod-eu-1');
    assert.equal(again.code, 1);
    assert.equal(read(ca(), PKI_FILES.caKey), before);
  });

  it('shows subject, SAN URIs, expiry and days left', async () => {
    const r = await pki('show', join(cli(), PKI_FILES.clientCert), join(ca(), PKI_FILES.caCert));
    assert.equal(r.code, 0);
    const text = r.lines.join('\n');
    assert.match(text, /subject: {3}CN=prod-eu-1/);
    assert.match(text, /san uris: {2}spiffe:\/\/keygate\/cluster\/prod-eu-1/);
    assert.match(text, /notAfter: {2}\d{4}-\d\d-\d\dT.*\((36[45]) days left\)/);
    assert.match(text, /\((29|30) days left\)/);
    const later = await pki('show', '--now', '2099-01-01T00:00:00Z', join(cli(), PKI_FILES.clientCert));
    assert.match(later.lines.join('\n'), /EXPIRED \d+ days ago/);
    const missing = await pki('show', join(dir, 'nope.pem'));
    assert.equal(missing.code, 1);
  });

  it('answers usage errors with exit code 2', async () => {
    for (const args of [
      [],
      ['frobnicate'],
      ['ca'],
      ['server', '--ca', ca(), '--out', join(dir, 'x')],
      ['server', '--ca', ca(), '--out', join(dir, 'x'), '--ip', 'not-an-ip'],
      ['client', '--ca', ca(), '--out', join(dir, 'x')],
      ['client', '--ca', ca(), '--out', join(dir, 'x'), '--cluster', 'a/b'],
      ['ca', '--out', join(dir, 'x'), '--days', '0'],
      ['ca', '--out', join(dir, 'x'), '--bogus'],
    ]) {
      const r = await pki(...args);
      assert.equal(r.code, 2, `${args.join(' ')} -> ${r.lines.join('\n')}`);
    }
    assert.equal((await pki('pki', '--help')).code, 0, 'a leading "pki" is accepted');
  });
});
