import { errorCollectionFor, HEADERS } from '@keygate/shared/api';
import { asKeygateError, type KeygateError } from '@keygate/shared/errors';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Ctx } from './env.js';

/**
 * The one place errors become responses: Key Protect's error collection with our stable code and
 * fixed text. Causes and details go to the log only; unknown errors are INTERNAL_ERR.
 */
export function toResponse(c: Ctx, err: unknown): Response {
  const k = asKeygateError(err);
  logError(c, k);
  setRetryAfter(c, k);
  return c.json(errorCollectionFor(k.code), k.httpStatus as ContentfulStatusCode);
}

/** Retry-After on answers that tell the client to come back later (429 and OVERLOADED's 503). */
export function setRetryAfter(c: Ctx, k: KeygateError): void {
  const seconds = k.detail?.retryAfterSeconds;
  if (typeof seconds === 'number') c.header(HEADERS.retryAfter, String(seconds));
}

/**
 * Load shedding answers: expected under a burst and counted in the metrics, so a line per request
 * (thousands a second in a storm) would only cost the CPU the shedding is there to save.
 */
const SHED: ReadonlySet<string> = new Set(['OVERLOADED', 'DEADLINE_EXCEEDED', 'RATE_LIMITED_ERR']);

/** Logs an answered error: 5xx at error, refusals at info, load shedding at debug. */
export function logError(c: Ctx, k: KeygateError, what = 'request'): void {
  const log = c.get('log');
  if (log === undefined) return;
  if (SHED.has(k.code)) log.debug({ err: k.toLog() }, `${what} shed`);
  else if (k.httpStatus >= 500) log.error({ err: k.toLog() }, `${what} failed`);
  else log.info({ err: k.toLog() }, `${what} refused`);
}
