import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KmsClient } from '@keygate/shim';
import { type DevStack, startDevStack } from '#devstack/devstack.js';

/** The dev stack on a machine without SoftHSM2: the software backend, loudly announced. */
describe('e2e: dev stack on the software backend', () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-e2e-soft-'));
  let stack: DevStack | undefined;
  after(async () => stack?.stop());

  it('starts, says it is the development-only backend, and round-trips v2 and v1', async () => {
    stack = await startDevStack({ home, gatewayPort: 0, healthzPort: 0, hsm: 'software' });
    assert.equal(stack.info.hsm, 'software');
    assert.ok(
      stack.gateway.lines.some((l) => /software/i.test(l) && /"level":"(warn|error|fatal)"/.test(l)),
      'the gateway did not warn that it runs the software backend',
    );
    const c = new KmsClient(stack.info.socket);
    try {
      const pt = randomBytes(32);
      const r = await c.encrypt(pt, 'soft');
      assert.ok((await c.decrypt(r.ciphertext, r.key_id)).plaintext.equals(pt));
      const v1 = await c.v1Encrypt(pt);
      assert.ok((await c.v1Decrypt(v1.cipher)).plain.equals(pt));
    } finally {
      c.close();
    }
  });
});
