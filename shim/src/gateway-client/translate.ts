import { codeOfErrorCollection, type ErrorCode, iamError, KeygateError } from '@keygate/shared';

/** A translated gateway failure: our error plus whether another attempt may help. */
export interface GatewayFailure {
  readonly error: KeygateError;
  readonly retryable: boolean;
  /** The token was refused: fetch a new one and try again once. */
  readonly tokenRejected?: boolean;
}

const PASS_THROUGH: ReadonlySet<ErrorCode> = new Set([
  'UNPROCESSABLE_CIPHERTEXT_ERR',
  'KEY_DELETED_ERR',
  'KEY_ACTION_INVALID_STATE_ERR',
  'KEY_NOT_FOUND_ERR',
]);

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

/** Translates a non-2xx answer of the key API (Key Protect error collection). */
export function fromHttpStatus(status: number, body: unknown, url: string): GatewayFailure {
  const theirs = codeOfErrorCollection(body);
  const detail = { status, url, gatewayCode: theirs ?? '' };
  if (theirs && PASS_THROUGH.has(theirs))
    return { error: new KeygateError(theirs, { detail }), retryable: false };
  if (status === 401)
    return { error: new KeygateError('GATEWAY_REFUSED', { detail }), retryable: false, tokenRejected: true };
  if (status === 403) return { error: new KeygateError('GATEWAY_REFUSED', { detail }), retryable: false };
  if (status === 404) return { error: new KeygateError('KEY_NOT_FOUND_ERR', { detail }), retryable: false };
  if (status === 409)
    return { error: new KeygateError('KEY_ACTION_INVALID_STATE_ERR', { detail }), retryable: false };
  if (status === 410) return { error: new KeygateError('KEY_DELETED_ERR', { detail }), retryable: false };
  if (status === 422)
    return { error: new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { detail }), retryable: false };
  if (status === 504) return { error: new KeygateError('GATEWAY_TIMEOUT', { detail }), retryable: true };
  if (status === 429 || status >= 500)
    return { error: new KeygateError('GATEWAY_UNAVAILABLE', { detail }), retryable: true };
  return { error: new KeygateError('GATEWAY_PROTOCOL_ERR', { detail }), retryable: false };
}

/** Translates a non-2xx answer of the IAM token endpoint. */
export function fromTokenStatus(status: number, body: unknown, url: string): GatewayFailure {
  const parsed = iamError.safeParse(body);
  const detail = { status, url, iam: parsed.success ? parsed.data.errorCode : '' };
  if (status === 429 || status >= 500)
    return { error: new KeygateError('GATEWAY_UNAVAILABLE', { detail }), retryable: true };
  return { error: new KeygateError('GATEWAY_REFUSED', { detail }), retryable: false };
}
