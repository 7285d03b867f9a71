/**
 * A Key Protect client in a process of its own, for memory tests of the gateway: the DEK exists
 * here, never in the test process that hosts the gateway. `node wrap-client.js` with the
 * settings as JSON in KG_WRAP_CLIENT: gets a token, then `rounds` times wraps the DEK (rebuilt
 * from its split form) and unwraps it again, checks the result, and prints `ok <rounds>`.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import type { KpIdentity } from './kp-http.js';

interface Settings extends KpIdentity {
  readonly crkId: string;
  /** The DEK's halves, hex: a, and b as b XOR mask. */
  readonly a: string;
  readonly bMasked: string;
  readonly mask: string;
  readonly rounds: number;
}

const s = JSON.parse(process.env.KG_WRAP_CLIENT ?? '{}') as Settings;
const agent = new Agent({
  keepAlive: true,
  ca: readFileSync(s.caFile),
  cert: readFileSync(s.certFile),
  key: readFileSync(s.keyFile),
});

function post(path: string, body: string, headers: Record<string, string>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const req = request(`${s.url}${path}`, { method: 'POST', agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(JSON.parse(text) as Record<string, unknown>)
          : reject(new Error(`${path}: ${res.statusCode} ${text}`)),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

const b = Buffer.from(s.bMasked, 'hex').map((x, i) => x ^ (Buffer.from(s.mask, 'hex')[i] as number));
const dek = Buffer.concat([Buffer.from(s.a, 'hex'), b]).toString('base64');
const token = await post(
  '/identity/token',
  new URLSearchParams({
    grant_type: 'urn:ibm:params:oauth:grant-type:apikey',
    apikey: readFileSync(s.apiKeyFile, 'utf8').trim(),
  }).toString(),
  { 'content-type': 'application/x-www-form-urlencoded' },
);
const headers = {
  'content-type': 'application/json',
  authorization: `Bearer ${String(token.access_token)}`,
  'bluemix-instance': s.instance,
};
for (let i = 0; i < s.rounds; i++) {
  const w = await post(
    `/api/v2/keys/${s.crkId}/actions/wrap`,
    JSON.stringify({ plaintext: dek, aad: ['mem'] }),
    headers,
  );
  const u = await post(
    `/api/v2/keys/${s.crkId}/actions/unwrap`,
    JSON.stringify({ ciphertext: w.ciphertext, aad: ['mem'] }),
    headers,
  );
  if (u.plaintext !== dek) throw new Error('unwrap gave another DEK');
}
agent.destroy();
console.log(`ok ${s.rounds}`);
