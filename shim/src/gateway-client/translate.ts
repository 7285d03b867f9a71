import { codeOfErrorCollection, ERROR_CATALOGUE, errorKind, iamError, KeygateError } from '@keygate/shared';

/** A translated gateway failure: our error plus whether another attempt may help. */
export interface GatewayFailure {
  readonly error: KeygateError;
  readonly retryable: boolean;
  /** The token was refused: fetch a new one and try again once. */
  readonly tokenRejected?: boolean;
  /** The gateway answered that it is busy or out of time: it is up, so its breaker does not count it. */
  readonly busy?: boolean;
  /** The gateway's Retry-After, in ms: no sooner than this on the same URL. */
  readonly retryAfterMs?: number;
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_ABORTED']);

/** Translates an undici / socket / TLS error; the vendor code is kept in `detail.und`. */
export function fromTransportError(err: unknown, url: string): GatewayFailure {
  const e = err as { code?: unknown; name?: unknown; cause?: { code?: unknown } };
  const code = typeof e.code === 'string' ? e.code : typeof e.cause?.code === 'string' ? e.cause.code : '';
  const name = typeof e.name === 'string' ? e.name : '';
  const detail = { und: code || name, url };
  if (name === 'AbortError' || name === 'TimeoutError' || TIMEOUT_CODES.has(code)) {
    return { error: new KeygateError('GATEWAY_TIMEOUT', { cause: err, detail }), retryable: true };
  }
  return { error: new KeygateError('GATEWAY_UNAVAILABLE', { cause: err, detail }), retryable: true };
}

/**
 * Translates a non-2xx answer of the key API (Key Protect error collection). A key state (not
 * found, not active, destroyed) is believed only when the body names its code with its status:
 * the core drops every DEK on it, so a bare 404 or 410 from a proxy or a wrong URL must not
 * count. Busy answers (the gateway's OVERLOADED, DEADLINE_EXCEEDED) and every 5xx are transient.
 */
export function fromHttpStatus(
  status: number,
  body: unknown,
  url: string,
  retryAfter?: string | string[],
): GatewayFailure {
  const theirs = codeOfErrorCollection(body);
  const detail = { status, url, gatewayCode: theirs ?? '' };
  // A key-state code counts only with its own HTTP status (Key Protect's, in the catalogue).
  if (theirs !== undefined && errorKind(theirs) === 'key-state' && ERROR_CATALOGUE[theirs].http === status)
    return { error: new KeygateError(theirs, { detail }), retryable: false };
  // Facts about this one ciphertext, not the key: only this call fails (a disabled version's blob
  // must never be taken for a disabled key, which would drop every DEK).
  if (theirs === 'UNPROCESSABLE_CIPHERTEXT_ERR' || theirs === 'KEY_VERSION_DISABLED_ERR')
    return { error: new KeygateError(theirs, { detail }), retryable: false };
  if (status === 401)
    return { error: new KeygateError('GATEWAY_REFUSED', { detail }), retryable: false, tokenRejected: true };
  if (status === 403) return { error: new KeygateError('GATEWAY_REFUSED', { detail }), retryable: false };
  if (status === 404 || status === 409 || status === 410) {
    // Not a key state. A bare status (a proxy, a wrong URL) or a route this gateway does not know
    // (NOT_FOUND_ERR: a replica of another version) may be answered properly by another URL or a
    // moment later; any other code of the gateway's is its decision, and a retry gets it again.
    const retryable = theirs === undefined || theirs === 'NOT_FOUND_ERR';
    return { error: new KeygateError('GATEWAY_PROTOCOL_ERR', { detail }), retryable };
  }
  if (status === 422)
    return { error: new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { detail }), retryable: false };
  if (theirs === 'DEADLINE_EXCEEDED') {
    // The gateway dropped the call because our budget ran out: no time is left to try again.
    return { error: new KeygateError('GATEWAY_TIMEOUT', { detail }), retryable: false, busy: true };
  }
  if (status === 504) return { error: new KeygateError('GATEWAY_TIMEOUT', { detail }), retryable: true };
  if (status === 429 || status >= 500) {
    const ms = retryAfterMs(retryAfter);
    return {
      error: new KeygateError('GATEWAY_UNAVAILABLE', { detail }),
      retryable: true,
      ...(theirs === 'OVERLOADED' ? { busy: true } : {}),
      ...(ms === undefined ? {} : { retryAfterMs: ms }),
    };
  }
  return { error: new KeygateError('GATEWAY_PROTOCOL_ERR', { detail }), retryable: false };
}

/** Retry-After in delta-seconds (what the gateway sends), in ms; undefined when absent or not a number. */
function retryAfterMs(header: string | string[] | undefined): number | undefined {
  const v = Array.isArray(header) ? header[0] : header;
  if (v === undefined || !/^\s*\d+(\.\d+)?\s*$/.test(v)) return undefined;
  return Math.round(Number(v) * 1000);
}

/** Translates a non-2xx answer of the IAM token endpoint. */
export function fromTokenStatus(status: number, body: unknown, url: string): GatewayFailure {
  const parsed = iamError.safeParse(body);
  const detail = { status, url, iam: parsed.success ? parsed.data.errorCode : '' };
  if (status === 429 || status >= 500)
    return { error: new KeygateError('GATEWAY_UNAVAILABLE', { detail }), retryable: true };
  return { error: new KeygateError('GATEWAY_REFUSED', { detail }), retryable: false };
}
