import { secretFromBase64 } from '@keygate/shared/crypto';
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
  const text = await bodyText(c);
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

/**
 * The request body as text. With a Content-Length (which the bodyLimit middleware has checked,
 * and Node's parser enforces as the exact body size) it is read straight from Node's request, so
 * no WHATWG Request, AbortController and ReadableStream are built per request; otherwise through
 * hono (chunked bodies, where bodyLimit wraps the stream). A UTF-8 BOM is dropped, as fetch's
 * text() does.
 */
async function bodyText(c: Ctx): Promise<string> {
  const incoming = (c.env as Partial<Ctx['env']> | undefined)?.incoming;
  const length = incoming?.headers['content-length'];
  if (
    incoming === undefined ||
    length === undefined ||
    incoming.headers['transfer-encoding'] !== undefined ||
    incoming.readableDidRead ||
    incoming.readableEnded
  ) {
    return c.req.text();
  }
  const chunks: Buffer[] = [];
  for await (const chunk of incoming) chunks.push(chunk as Buffer);
  const text = (chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)).toString('utf8');
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** Decodes standard base64 that the schema already checked. */
export function fromBase64(text: string): Buffer {
  return Buffer.from(text, 'base64');
}

/**
 * Decodes base64 key material (a DEK to wrap) into a buffer of its own (allocSecret: neither
 * Node's shared pool nor V8's heap), which the caller zeroes. INVALID_FIELD_ERR when not base64.
 */
export function secretFromBase64Field(text: string, field: string): Buffer {
  const out = secretFromBase64(text, 0, Number.MAX_SAFE_INTEGER);
  if (out === undefined) throw new KeygateError('INVALID_FIELD_ERR', { detail: { field } });
  return out;
}
