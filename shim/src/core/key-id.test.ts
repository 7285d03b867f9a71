import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeyIdOf, keyIdFor, keyIdPrefix } from './key-id.js';

describe('key_id', () => {
  it('is readable and the same for the same instance, key and version', () => {
    const p = keyIdPrefix('inst-1', 'crk-1');
    assert.equal(keyIdFor(p, 'ver-1'), 'keygate/inst-1/crk-1/ver-1');
    assert.equal(keyIdFor(keyIdPrefix('inst-1', 'crk-1'), 'ver-1'), keyIdFor(p, 'ver-1'));
    assert.ok(isKeyIdOf(p, 'keygate/inst-1/crk-1/ver-2'));
    assert.ok(!isKeyIdOf(p, 'keygate/inst-1/crk-2/ver-2'));
    assert.ok(!isKeyIdOf(p, 'keygate/inst-1/crk-1/'));
    assert.ok(!isKeyIdOf(p, 'keygate/inst-1/crk-1/a/b'));
  });

  it('hashes long ids so that the key_id stays within 255 bytes', () => {
    const p = keyIdPrefix('i'.repeat(128), 'c'.repeat(128));
    assert.match(p, /^keygate\/[0-9a-f]{32}\/$/);
    assert.ok(Buffer.byteLength(keyIdFor(p, 'v'.repeat(64))) <= 255);
    assert.notEqual(p, keyIdPrefix('i'.repeat(128), 'd'.repeat(128)));
  });

  it('rejects an invalid version id', () => {
    assert.throws(() => keyIdFor('keygate/a/b/', 'x/y'), RangeError);
  });
});
