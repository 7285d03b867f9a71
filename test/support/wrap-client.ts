/**
 * A Key Protect client in a process of its own, for memory tests of the gateway: the DEK exists
 * here, never in the test process that hosts the gateway. `node wrap-client.js` with the
 * settings as JSON in KG_WRAP_CLIENT: gets a token, then `rounds` times wraps the DEK (rebuilt
 * from its split form) and unwraps it again, checks the result, and prints `ok <rounds>`.
 */
import { type KpIdentity, kpSession } from './kp-http.js';

interface Settings extends KpIdentity {
  readonly crkId: string;
  /** The DEK's halves, hex: a, and b as b XOR mask. */
  readonly a: string;
  readonly bMasked: string;
  readonly mask: string;
  readonly rounds: number;
}

const s = JSON.parse(process.env.KG_WRAP_CLIENT ?? '{}') as Settings;
const b = Buffer.from(s.bMasked, 'hex').map((x, i) => x ^ (Buffer.from(s.mask, 'hex')[i] as number));
const dek = Buffer.concat([Buffer.from(s.a, 'hex'), b]).toString('base64');
const session = await kpSession(s);
/** POSTs an action and returns its body; anything but 200 fails the client. */
const action = async (name: string, body: unknown): Promise<Record<string, unknown>> => {
  const r = await session.call('POST', `/api/v2/keys/${s.crkId}/actions/${name}`, body);
  if (r.status !== 200 || r.body === undefined)
    throw new Error(`${name}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};
for (let i = 0; i < s.rounds; i++) {
  const w = await action('wrap', { plaintext: dek, aad: ['mem'] });
  const u = await action('unwrap', { ciphertext: w.ciphertext, aad: ['mem'] });
  if (u.plaintext !== dek) throw new Error('unwrap gave another DEK');
}
session.close();
console.log(`ok ${s.rounds}`);
