/**
 * A TLS handshake flood for fault tests, run as its own process (so the flood's CPU is not the
 * test's): `node tls-flood.js PORT COUNT [LOCAL_ADDRESS]` opens COUNT TLS connections at once to
 * 127.0.0.1:PORT from LOCAL_ADDRESS (default 127.0.0.2) without a client certificate, and prints
 * `{"handshakes":N,"refused":N,"ms":N}` when every one has ended.
 */
import { connect as tcpConnect } from 'node:net';
import { connect } from 'node:tls';

const [port, count, from = '127.0.0.2'] = process.argv.slice(2);
const n = Number(count);
let left = n;
let handshakes = 0;
let refused = 0;
const started = performance.now();
for (let i = 0; i < n; i++) {
  const tcp = tcpConnect({ host: '127.0.0.1', port: Number(port), localAddress: from });
  tcp.on('error', () => undefined);
  const s = connect({ socket: tcp, rejectUnauthorized: false });
  s.on('secureConnect', () => {
    handshakes++;
  });
  s.on('error', () => undefined);
  s.on('close', () => {
    if (--left === 0) {
      refused = n - handshakes;
      console.log(JSON.stringify({ handshakes, refused, ms: Math.round(performance.now() - started) }));
    }
  });
  s.setTimeout(60_000, () => s.destroy());
}
