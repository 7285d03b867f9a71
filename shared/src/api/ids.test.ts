import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { INSTANCE_ID_PATTERN, isInstanceId, isKeyId, KEY_ID_PATTERN } from './ids.js';

describe('instance and key id patterns', () => {
  it('instance ids: letters, digits and ._:-, 1..128, starting with a letter or digit', () => {
    for (const ok of ['a', '0', 'a:b', 'team-a', 'inst.1_x', 'crn:v1:bluemix', 'toString', 'A'.repeat(128)]) {
      assert.ok(isInstanceId(ok), ok);
    }
    for (const bad of ['', '_a', '__proto__', ':a', '-a', '.a', 'a/b', 'a b', 'a\n', 'é', 'A'.repeat(129)]) {
      assert.ok(!isInstanceId(bad), JSON.stringify(bad));
    }
    assert.ok(!isInstanceId(12345), 'a number is not an id: config readers keep the text');
  });

  it('key ids: the same without `:`', () => {
    for (const ok of ['a', '0123', '3f1c7e52-8c3a-4b1e-9d2f-0a1b2c3d4e5f', 'k.1_x-2'])
      assert.ok(isKeyId(ok), ok);
    for (const bad of ['', 'a:b', '_k', 'k/1', 'K'.repeat(129)]) assert.ok(!isKeyId(bad), bad);
  });

  it('every key id is an instance id; the two differ only by `:`', () => {
    fc.assert(
      fc.property(fc.stringMatching(KEY_ID_PATTERN), (id) => isInstanceId(id)),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.stringMatching(INSTANCE_ID_PATTERN), (id) => isKeyId(id) === !id.includes(':')),
      { numRuns: 500 },
    );
  });

  it('no instance id starts with `_`, so none names an Object.prototype slot like __proto__', () => {
    fc.assert(
      fc.property(fc.stringMatching(INSTANCE_ID_PATTERN), (id) => !id.startsWith('_') && id.length <= 128),
      { numRuns: 500 },
    );
  });
});
