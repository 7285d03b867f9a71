/** What a request's `Prefer` header asks the answer to hold (RFC 7240 `return`). */
export type PreferReturn = 'minimal' | 'representation';

/**
 * The `return` preference of a `Prefer` header, or undefined when it states none. Other
 * preferences and their parameters are ignored, as RFC 7240 asks; the first `return` wins.
 */
export function preferReturn(header: string | undefined): PreferReturn | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(',')) {
    const pref = (part.split(';')[0] ?? '').trim().toLowerCase();
    const m = /^return\s*=\s*"?(minimal|representation)"?$/.exec(pref);
    if (m) return m[1] as PreferReturn;
  }
  return undefined;
}
