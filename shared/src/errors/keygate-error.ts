import { ERROR_CATALOGUE, type ErrorCode, type ErrorSpec } from './catalogue.js';
import { GrpcStatus } from './grpc-status.js';

const BRAND = Symbol.for('keygate.error');

/** Log-only context of an error: vendor codes, names of things. Never secrets or key material. */
export type ErrorDetail = Readonly<Record<string, string | number | boolean | undefined>>;

/**
 * The one error type of keygate. `code` is stable and closed; `message` is the fixed client text
 * of that code. `cause` and `detail` are for logs only and must never be sent to a client.
 */
export class KeygateError extends Error {
  readonly code: ErrorCode;
  readonly detail: ErrorDetail | undefined;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, options: { cause?: unknown; detail?: ErrorDetail } = {}) {
    super(ERROR_CATALOGUE[code].message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'KeygateError';
    this.code = code;
    this.detail = options.detail;
  }

  /** HTTP status of this error's code. */
  get httpStatus(): number {
    return ERROR_CATALOGUE[this.code].http;
  }

  /** Numeric gRPC status of this error's code. */
  get grpcStatus(): number {
    return GrpcStatus[ERROR_CATALOGUE[this.code].grpc];
  }

  /** A plain object for structured logs: code, detail and the cause's name and message. */
  toLog(): Record<string, unknown> {
    const out: Record<string, unknown> = { code: this.code };
    if (this.detail) out.detail = this.detail;
    if (this.cause !== undefined) out.cause = describeCause(this.cause);
    return out;
  }
}

/** True for any KeygateError, even one made by another copy of this package. */
export function isKeygateError(value: unknown): value is KeygateError {
  return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
}

/** Returns `err` when it is a KeygateError, otherwise INTERNAL_ERR with `err` kept as cause. */
export function asKeygateError(err: unknown): KeygateError {
  return isKeygateError(err) ? err : new KeygateError('INTERNAL_ERR', { cause: err });
}

/** The catalogue entry of a code. */
export function errorSpec(code: ErrorCode): ErrorSpec {
  return ERROR_CATALOGUE[code];
}

function describeCause(cause: unknown): Record<string, unknown> | string {
  if (cause instanceof Error) {
    const out: Record<string, unknown> = { name: cause.name, message: cause.message };
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') out.code = code;
    if (isKeygateError(cause)) out.keygate = cause.toLog();
    return out;
  }
  return String(cause);
}
