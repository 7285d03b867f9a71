import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { KeyState } from '@keygate/shared/api';
import { isKeygateError } from '@keygate/shared/errors';
import type { KeyRecord } from '../../core/keys/key-store.js';
import { withFileLock } from './file-lock.js';
import { JsonFileKeyStore } from './json-file-store.js';

const dir = mkdtempSync(join(tmpdir(), 'keygate-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function record(id: string, name = id): KeyRecord {
  const t = '2026-01-01T00:00:00.000Z';
  return {
    instance: 'inst',
    id,
    name,
    state: KeyState.ACTIVE,
    creationDate: t,
    lastUpdateDate: t,
    versions: [{ id: `${id}-v1`, creationDate: t }],
  };
}

describe('JSON file key store', () => {
  it('shares keys between two stores on one file; a miss re-reads at once', async () => {
    const file = join(dir, 'a.json');
    const a = new JsonFileKeyStore(file, { refreshMs: 60_000, createIfMissing: true });
    const b = new JsonFileKeyStore(file, { refreshMs: 60_000, createIfMissing: true });
    await a.open();
    await b.open();
    assert.equal(await b.get('inst', 'k1'), undefined);
    await a.create(record('k1'));
    assert.equal((await b.get('inst', 'k1'))?.name, 'k1');
    await a.update('inst', 'k1', (k) => ({
      ...k,
      versions: [...k.versions, { id: 'k1-v2', creationDate: k.creationDate }],
    }));
    assert.equal((await b.get('inst', 'k1', { fresh: true }))?.versions.length, 2);
    await assert.rejects(
      b.create(record('k2', 'k1')),
      (e: unknown) => isKeygateError(e) && e.code === 'KEY_ALREADY_EXISTS_ERR',
    );
    await assert.rejects(
      b.update('inst', 'nope', (k) => k),
      (e: unknown) => isKeygateError(e) && e.code === 'KEY_NOT_FOUND_ERR',
    );
  });

  it('serialises concurrent writers: no update is lost', async () => {
    const file = join(dir, 'b.json');
    const stores = [1, 2, 3].map(() => new JsonFileKeyStore(file, { createIfMissing: true }));
    for (const s of stores) await s.open();
    await stores[0]?.create(record('k'));
    await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        stores[i % 3]?.update('inst', 'k', (k) => ({
          ...k,
          versions: [...k.versions, { id: `v${i}`, creationDate: k.creationDate }],
        })),
      ),
    );
    assert.equal((await stores[1]?.get('inst', 'k', { fresh: true }))?.versions.length, 31);
  });

  it('takes over a lock left by a dead process', async () => {
    const lock = join(dir, 'c.lock');
    writeFileSync(lock, JSON.stringify({ pid: 2 ** 22 + 12345, at: Date.now() }));
    assert.equal(await withFileLock(lock, async () => 'got it', { timeoutMs: 2000 }), 'got it');
  });

  it('reports a corrupt file as STORE_UNAVAILABLE', async () => {
    const file = join(dir, 'd.json');
    writeFileSync(file, '{nope');
    const s = new JsonFileKeyStore(file, { createIfMissing: true });
    await s.open();
    await assert.rejects(s.list('inst'), (e: unknown) => isKeygateError(e) && e.code === 'STORE_UNAVAILABLE');
    assert.equal(s.status().ready, false);
  });
});
