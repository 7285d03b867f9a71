import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SingleFlight } from './single-flight.js';

describe('SingleFlight', () => {
  it('runs one call for concurrent callers of a key and forgets it once settled', async () => {
    const sf = new SingleFlight<string, number>();
    let calls = 0;
    const fn = async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
      return calls;
    };
    const all = await Promise.all([sf.run('a', fn), sf.run('a', fn), sf.run('b', fn)]);
    assert.deepEqual(all, [2, 2, 2]);
    assert.equal(sf.size, 0);
    await assert.rejects(sf.run('a', async () => Promise.reject(new Error('x'))));
    assert.equal(await sf.run('a', fn), 3);
  });
});
