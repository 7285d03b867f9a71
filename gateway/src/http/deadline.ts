/** The longest wait a caller may ask for; a larger `x-keygate-timeout-ms` is capped to it. */
export const MAX_TIMEOUT_MS = 600_000;

const DIGITS = /^\d{1,9}$/;

/**
 * The caller's deadline (ms since the epoch) from its `x-keygate-timeout-ms` header: `nowMs` plus
 * the budget it gave (capped). Undefined without a header or with one that is not a whole number
 * of milliseconds (a proxy's junk must not shorten anyone's request).
 */
export function deadlineFrom(header: string | undefined, nowMs: number): number | undefined {
  if (header === undefined || !DIGITS.test(header)) return undefined;
  return nowMs + Math.min(Number(header), MAX_TIMEOUT_MS);
}
