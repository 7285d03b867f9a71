import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { systemRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { createLogger } from '@keygate/shared/log';
import { captureLines } from '../../testing/softhsm.js';
import { SoftwareHsm } from './software-hsm.js';

describe('software key backend', () => {
  it('seals keys in a file that a second instance can use, and warns loudly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-soft-'));
    try {
      const log = captureLines();
      const master = systemRandom(32);
      const a = new SoftwareHsm(
        join(dir, 'keys.json'),
        master,
        systemRandom,
        createLogger({ destination: log.stream }),
      );
      assert.ok(log.lines.some((l) => l.level === 'warn' && String(l.msg).includes('DEVELOPMENT ONLY')));
      assert.match(a.status().reasons.join(), /DEVELOPMENT ONLY/);
      const ref = { instance: 'i', crkId: 'k', versionId: 'v' };
      await a.generateKey(ref);
      const sealed = await a.encrypt(ref, Buffer.from('dek'), Buffer.from('aad'));
      const b = new SoftwareHsm(
        join(dir, 'keys.json'),
        master,
        systemRandom,
        createLogger({ level: 'silent' }),
      );
      assert.equal((await b.decrypt(ref, sealed, Buffer.from('aad'))).toString(), 'dek');
      await assert.rejects(
        b.decrypt(ref, sealed, Buffer.from('x')),
        (e: unknown) => isKeygateError(e) && e.code === 'UNPROCESSABLE_CIPHERTEXT_ERR',
      );
      await a.destroyKey(ref);
      const c = new SoftwareHsm(
        join(dir, 'keys.json'),
        master,
        systemRandom,
        createLogger({ level: 'silent' }),
      );
      await assert.rejects(
        c.encrypt(ref, Buffer.from('x'), Buffer.alloc(0)),
        // The store, not the backend, says whether a key was destroyed (key-crypto.ts).
        (e: unknown) => isKeygateError(e) && e.code === 'HSM_KEY_OBJECT_MISSING',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
