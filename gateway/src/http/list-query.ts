import { KeygateError } from '@keygate/shared/errors';
import { DEFAULT_LIST_STATES, type KeyListQuery, type VersionListQuery } from '../core/keys/key-listing.js';

/** Reads one query parameter (the first when repeated); undefined when absent. */
export type QueryParam = (name: string) => string | undefined;

/** Key Protect's page size when `limit` is absent, and the largest `limit` it accepts. */
export const DEFAULT_LIMIT = 200;
export const MAX_LIMIT = 5000;
const MAX_OFFSET = 2 ** 31 - 1;

const invalid = (param: string) => new KeygateError('INVALID_QUERY_PARAM_ERR', { detail: { param } });

function integer(q: QueryParam, name: string, min: number, max: number, absent: number): number {
  const v = q(name);
  if (v === undefined) return absent;
  if (!/^\d{1,10}$/.test(v)) throw invalid(name);
  const n = Number(v);
  if (n < min || n > max) throw invalid(name);
  return n;
}

/** A boolean as Go's strconv.ParseBool reads it (Key Protect is written in Go). */
function boolean(q: QueryParam, name: string): boolean | undefined {
  const v = q(name);
  if (v === undefined) return undefined;
  if (/^(1|t|true)$/i.test(v)) return true;
  if (/^(0|f|false)$/i.test(v)) return false;
  throw invalid(name);
}

/** `state`: Key Protect's comma-separated states 0..5, no spaces, no empty entries. */
function states(q: QueryParam): ReadonlySet<number> {
  const v = q('state');
  if (v === undefined) return DEFAULT_LIST_STATES;
  if (!/^[0-5](,[0-5])*$/.test(v)) throw invalid('state');
  return new Set(v.split(',').map(Number));
}

/**
 * The query of `GET /api/v2/keys`: `limit` (1..5000, default 200), `offset` (default 0), `state`
 * (default 0,1,2,3) and `extractable`. Key Protect's `search` and `filter` are not served, and
 * `sort` only as `id` (the order keygate lists in): refused rather than ignored, so a client never
 * takes an unfiltered list for a filtered one. INVALID_QUERY_PARAM_ERR names the parameter.
 */
export function parseKeyListQuery(q: QueryParam): KeyListQuery {
  for (const name of ['search', 'filter']) if (q(name) !== undefined) throw invalid(name);
  const sort = q('sort');
  if (sort !== undefined && sort !== 'id') throw invalid('sort');
  return {
    limit: integer(q, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT),
    offset: integer(q, 'offset', 0, MAX_OFFSET, 0),
    states: states(q),
    extractable: boolean(q, 'extractable'),
  };
}

/** The query of `GET /api/v2/keys/{id}/versions`: `limit`, `offset`, `totalCount`, `allKeyStates`. */
export function parseVersionListQuery(q: QueryParam): VersionListQuery & { readonly totalCount: boolean } {
  return {
    limit: integer(q, 'limit', 1, MAX_LIMIT, DEFAULT_LIMIT),
    offset: integer(q, 'offset', 0, MAX_OFFSET, 0),
    totalCount: boolean(q, 'totalCount') ?? false,
    allKeyStates: boolean(q, 'allKeyStates') ?? false,
  };
}
