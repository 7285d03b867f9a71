/**
 * Baseline for G1/G2: bare node:https with mutual TLS (same server certificate, client CA and
 * keep-alive as the gateway). It reads and parses the JSON body, reads the peer certificate, and
 * answers with the body in ECHO_BODY_FILE (the gateway's real unwrap answer). Env: ECHO_CERT,
 * ECHO_KEY, ECHO_CA, ECHO_BODY_FILE.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';

const env = (k: string) => process.env[k] ?? '';
const answer = readFileSync(env('ECHO_BODY_FILE'));
const server = createServer(
  {
    cert: readFileSync(env('ECHO_CERT')),
    key: readFileSync(env('ECHO_KEY')),
    ca: readFileSync(env('ECHO_CA')),
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2',
  },
  (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      try {
        JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      const cert = (req.socket as TLSSocket).getPeerCertificate(false);
      if (!cert.raw) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': answer.length });
      res.end(answer);
    });
  },
);
server.keepAliveTimeout = 300_000;
server.headersTimeout = 305_000;
server.listen(0, '127.0.0.1', () => {
  const port = (server.address() as AddressInfo).port;
  console.log(JSON.stringify({ msg: 'https echo listening', url: `https://127.0.0.1:${port}` }));
});
process.on('SIGTERM', () => process.exit(0));
