import { errorCollectionFor } from '@keygate/shared/api';
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
  return c.json(errorCollectionFor(k.code), k.httpStatus as ContentfulStatusCode);
}

function logError(c: Ctx, k: KeygateError): void {
  const log = c.get('log');
  if (log === undefined) return;
  if (k.httpStatus >= 500) log.error({ err: k.toLog() }, 'request failed');
  else log.info({ err: k.toLog() }, 'request refused');
}
