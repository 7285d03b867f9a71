import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isKeygateError } from '@keygate/shared/errors';
import { DEFAULT_LIST_STATES } from '../core/keys/key-listing.js';
import { parseKeyListQuery, parseVersionListQuery } from './list-query.js';

const query = (qs: string) => {
  const p = new URLSearchParams(qs);
  return (name: string) => p.get(name) ?? undefined;
};

function refused(f: () => unknown, param: string): void {
  assert.throws(
    f,
    (e: unknown) => isKeygateError(e) && e.code === 'INVALID_QUERY_PARAM_ERR' && e.detail?.param === param,
  );
}

describe('list query parsing (Key Protect limit, offset, state, extractable)', () => {
  it("defaults to Key Protect's: limit 200, offset 0, every state but destroyed", () => {
    const q = parseKeyListQuery(query(''));
    assert.equal(q.limit, 200);
    assert.equal(q.offset, 0);
    assert.equal(q.states, DEFAULT_LIST_STATES);
    assert.equal(q.extractable, undefined);
  });

  it('reads limit 1..5000, any offset, comma-separated states and extractable', () => {
    const q = parseKeyListQuery(query('limit=5000&offset=4200&state=1,5&extractable=false&sort=id'));
    assert.deepEqual([q.limit, q.offset, [...q.states], q.extractable], [5000, 4200, [1, 5], false]);
    assert.equal(parseKeyListQuery(query('limit=1&extractable=TRUE')).extractable, true);
    assert.equal(parseKeyListQuery(query('limit=2&limit=9')).limit, 2);
    assert.deepEqual([...parseKeyListQuery(query('state=0,1,2,3,4,5,5')).states], [0, 1, 2, 3, 4, 5]);
  });

  it('refuses out-of-range or malformed values, naming the parameter', () => {
    for (const v of ['0', '5001', '-1', '1.5', 'ten', '', ' 5', '99999999999']) {
      refused(() => parseKeyListQuery(query(`limit=${encodeURIComponent(v)}`)), 'limit');
    }
    for (const v of ['-1', 'x', '', '3000000000'])
      refused(() => parseKeyListQuery(query(`offset=${v}`)), 'offset');
    for (const v of ['6', '1,', ',1', '1,,2', '1, 2', '', 'active', '10']) {
      refused(() => parseKeyListQuery(query(`state=${encodeURIComponent(v)}`)), 'state');
    }
    refused(() => parseKeyListQuery(query('extractable=yes')), 'extractable');
  });

  it('refuses search, filter and any sort but id instead of ignoring them', () => {
    refused(() => parseKeyListQuery(query('search=foo')), 'search');
    refused(() => parseKeyListQuery(query('filter=state%3D1')), 'filter');
    refused(() => parseKeyListQuery(query('sort=-creationDate')), 'sort');
  });

  it('reads the versions query: limit, offset, totalCount, allKeyStates', () => {
    assert.deepEqual(parseVersionListQuery(query('')), {
      limit: 200,
      offset: 0,
      totalCount: false,
      allKeyStates: false,
    });
    assert.deepEqual(parseVersionListQuery(query('limit=1&offset=3&totalCount=true&allKeyStates=1')), {
      limit: 1,
      offset: 3,
      totalCount: true,
      allKeyStates: true,
    });
    refused(() => parseVersionListQuery(query('limit=5001')), 'limit');
    refused(() => parseVersionListQuery(query('totalCount=maybe')), 'totalCount');
    refused(() => parseVersionListQuery(query('allKeyStates=')), 'allKeyStates');
  });
});
