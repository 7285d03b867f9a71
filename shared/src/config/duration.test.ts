import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, parseDuration } from './duration.js';

describe('durations', () => {
  it('parses every unit and bare milliseconds, and refuses other text', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('1.5s'), 1500);
    assert.equal(parseDuration('7d'), 7 * 86_400_000);
    assert.equal(parseDuration(42), 42);
    assert.throws(() => parseDuration('5 minutes'), RangeError);
    assert.throws(() => parseDuration(-1), RangeError);
  });

  it('formats in the largest unit that divides, and reads back to the same value', () => {
    const cases: [number, string][] = [
      [60_000, '1m'],
      [90 * 86_400_000, '90d'],
      [3_600_000, '1h'],
      [1500, '1500ms'],
      [90_000, '90s'],
      [0, '0ms'],
    ];
    for (const [ms, text] of cases) {
      assert.equal(formatDuration(ms), text);
      assert.equal(parseDuration(text), ms);
    }
  });
});
