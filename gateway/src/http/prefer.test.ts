import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { preferReturn } from './prefer.js';

describe('Prefer header (RFC 7240 return)', () => {
  it('reads return=minimal and return=representation among other preferences', () => {
    assert.equal(preferReturn('return=representation'), 'representation');
    assert.equal(preferReturn('return=minimal'), 'minimal');
    assert.equal(preferReturn('respond-async, wait=5, Return = "Representation"'), 'representation');
    assert.equal(preferReturn('return=minimal; foo=bar, return=representation'), 'minimal');
  });

  it('states nothing for an absent, empty or unknown preference', () => {
    for (const h of [undefined, '', 'return=', 'return=everything', 'handling=lenient', 'minimal']) {
      assert.equal(preferReturn(h), undefined, String(h));
    }
  });
});
