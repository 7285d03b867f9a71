// keygate gateway readiness probe (exec): GET $KEYGATE_PROBE_URL over mutual TLS with the probe
// client certificate; exit 0 on HTTP 200, 1 otherwise. The gateway asks every connection for a
// client certificate, so kubelet's httpGet cannot probe it. The server certificate is checked
// against KEYGATE_PROBE_CA; its host name is not (the probe connects to 127.0.0.1).
import { readFileSync } from 'node:fs';
import { request } from 'node:https';

const env = process.env;
const url = env.KEYGATE_PROBE_URL ?? 'https://127.0.0.1:8443/readyz';
const fail = (why) => {
  console.error(`probe ${url}: ${why}`);
  process.exit(1);
};
let tls;
try {
  tls = {
    cert: readFileSync(env.KEYGATE_PROBE_CERT ?? '/etc/keygate/probe-tls/probe.pem'),
    key: readFileSync(env.KEYGATE_PROBE_KEY ?? '/etc/keygate/probe-tls/probe-key.pem'),
    ca: readFileSync(env.KEYGATE_PROBE_CA ?? '/etc/keygate/probe-tls/ca.pem'),
  };
} catch (err) {
  fail(`cannot read the probe certificate: ${err.message}`);
}
const req = request(
  url,
  { ...tls, method: 'GET', checkServerIdentity: () => undefined, timeout: 4000 },
  (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (d) => {
      if (body.length < 2048) body += d;
    });
    res.on('end', () => {
      if (res.statusCode === 200) process.exit(0);
      fail(`HTTP ${res.statusCode} ${body.trim()}`);
    });
  },
);
req.on('timeout', () => req.destroy(new Error('timeout after 4 s')));
req.on('error', (err) => fail(err.message));
req.end();
