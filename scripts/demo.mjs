#!/usr/bin/env node
// `npm run demo`: what an operator does to verify a node (like the IBM guide's checks), against
// the stack `npm start` runs: Status, then encrypt and decrypt through the socket with KMS v2 and
// v1, and show that the ciphertext does not contain the plaintext.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const home = resolve(process.env.KEYGATE_HOME ?? `${root}.keygate/dev`);
let info;
try {
  info = JSON.parse(readFileSync(`${home}/stack.json`, 'utf8'));
} catch {
  console.error(`demo: no ${home}/stack.json — run \`npm start\` first (in another terminal)`);
  process.exit(1);
}
const { KmsClient } = await import('@keygate/shim');
const client = new KmsClient(info.socket);
let failed = false;
const check = (ok, what) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failed = true;
};
try {
  const status = await client.status();
  console.log(`Status: version=${status.version} healthz=${status.healthz} key_id=${status.key_id}`);
  check(status.healthz === 'ok', 'the shim reports healthy');

  const secret = Buffer.from(`my-secret-value-${randomBytes(4).toString('hex')}`);
  const enc = await client.encrypt(secret, 'demo');
  console.log(`v2 Encrypt: ${enc.ciphertext.length} bytes, key_id=${enc.key_id}`);
  console.log(`  ciphertext (hex, first 48 bytes): ${enc.ciphertext.subarray(0, 48).toString('hex')}…`);
  check(enc.key_id === status.key_id, 'Encrypt returns the key_id Status reports');
  check(!enc.ciphertext.includes(secret), 'the ciphertext does not contain the plaintext');
  check(enc.ciphertext.length <= 1024, "the ciphertext fits kube-apiserver's 1024-byte limit");
  const dec = await client.decrypt(enc.ciphertext, enc.key_id, 'demo');
  check(dec.plaintext.equals(secret), 'Decrypt returns the original plaintext');

  const v1 = await client.v1Encrypt(secret);
  check(!v1.cipher.includes(secret), 'v1beta1 Encrypt: the ciphertext does not contain the plaintext');
  check(
    (await client.v1Decrypt(v1.cipher)).plain.equals(secret),
    'v1beta1 Decrypt returns the original plaintext',
  );
} catch (err) {
  check(false, `talking to ${info.socket}: ${err instanceof Error ? err.message : String(err)}`);
} finally {
  client.close();
}
console.log(failed ? '\ndemo: FAILED' : '\ndemo: the node encrypts and decrypts through keygate');
process.exit(failed ? 1 : 0);
