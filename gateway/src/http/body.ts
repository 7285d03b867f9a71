import { KeygateError } from '@keygate/shared/errors';
import type { z } from 'zod';
import type { Ctx } from './env.js';

/**
 * Reads and validates a JSON body. Unsupported content type: 415; not JSON, unknown or missing
 * keys: BAD_BODY_ERR; a present field with a bad value (e.g. bad base64): INVALID_FIELD_ERR.
 */
export async function parseJsonBody<S extends z.ZodType>(c: Ctx, schema: S): Promise<z.output<S>> {
  const type = c.req.header('content-type');
  if (type !== undefined && !/json/i.test(type)) throw new KeygateError('UNSUPPORTED_MEDIA_TYPE_ERR');
  const text = await c.req.text();
  let raw: unknown;
  try {
    raw = text.trim() === '' ? {} : JSON.parse(text);
  } catch (cause) {
    throw new KeygateError('BAD_BODY_ERR', { cause, detail: { reason: 'not JSON' } });
  }
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issues = result.error.issues;
  const fieldValue = issues.every(
    (i) =>
      i.code === 'custom' || i.code === 'too_big' || i.code === 'too_small' || i.code === 'invalid_format',
  );
  throw new KeygateError(fieldValue ? 'INVALID_FIELD_ERR' : 'BAD_BODY_ERR', {
    detail: { fields: issues.map((i) => i.path.join('.') || '(body)').join(',') },
  });
}

/** Decodes standard base64 that the schema already checked. */
export function fromBase64(text: string): Buffer {
  return Buffer.from(text, 'base64');
}
