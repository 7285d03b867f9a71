import { ACCESS_ERRORS } from './catalogue-access.js';
import type { ErrorKind, ErrorSpec } from './error-spec.js';

export { ERROR_KINDS, type ErrorKind, type ErrorSpec } from './error-spec.js';

/**
 * The closed catalogue of keygate error codes. Every code has exactly one kind, one HTTP status,
 * one gRPC status and one line in docs/errors.md (shared/src/errors/catalogue.test.ts keeps them in step).
 * Codes are stable: clients and runbooks match on them. Add codes; never rename or reuse one.
 */
export const ERROR_CATALOGUE = {
  // Request shape (gateway API, Key Protect compatible names)
  BAD_BODY_ERR: {
    kind: 'input',
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The request body is malformed or is missing required fields.',
  },
  INVALID_FIELD_ERR: {
    kind: 'input',
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'A field of the request has an invalid value.',
  },
  INSTANCE_HEADER_MISSING_ERR: {
    kind: 'input',
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The bluemix-instance header is missing or invalid.',
  },
  BODY_TOO_LARGE_ERR: {
    kind: 'input',
    http: 413,
    grpc: 'INVALID_ARGUMENT',
    message: 'The request body is larger than the limit.',
  },
  INVALID_QUERY_PARAM_ERR: {
    kind: 'input',
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'A query parameter of the request is not supported or has an invalid value.',
  },
  UNSUPPORTED_MEDIA_TYPE_ERR: {
    kind: 'input',
    http: 415,
    grpc: 'INVALID_ARGUMENT',
    message: 'The request content type is not supported.',
  },
  NOT_FOUND_ERR: {
    kind: 'input',
    http: 404,
    grpc: 'NOT_FOUND',
    message: 'The requested resource does not exist.',
  },
  METHOD_NOT_ALLOWED_ERR: {
    kind: 'input',
    http: 405,
    grpc: 'UNIMPLEMENTED',
    message: 'The method is not allowed on this resource.',
  },

  // Keys and ciphertexts
  KEY_NOT_FOUND_ERR: {
    kind: 'key-state',
    http: 404,
    grpc: 'FAILED_PRECONDITION',
    message: 'The key does not exist in this instance.',
  },
  KEY_DELETED_ERR: {
    kind: 'key-state',
    http: 410,
    grpc: 'FAILED_PRECONDITION',
    message: 'The key has been destroyed; data wrapped under it cannot be unwrapped.',
  },
  KEY_ACTION_INVALID_STATE_ERR: {
    kind: 'key-state',
    http: 409,
    grpc: 'FAILED_PRECONDITION',
    message: 'The key is not in a state that allows this action.',
  },
  KEY_USAGE_LIMIT_ERR: {
    kind: 'key-state',
    http: 409,
    grpc: 'FAILED_PRECONDITION',
    message: 'The current key version has reached its encryption limit; rotate the key.',
  },
  KEY_ALREADY_EXISTS_ERR: {
    kind: 'input',
    http: 409,
    grpc: 'ALREADY_EXISTS',
    message: 'A key with this name already exists in this instance.',
  },
  UNPROCESSABLE_CIPHERTEXT_ERR: {
    kind: 'input',
    http: 422,
    grpc: 'INVALID_ARGUMENT',
    message: 'The ciphertext is malformed, was tampered with, or belongs to another key, instance or aad.',
  },
  KEY_VERSION_DISABLED_ERR: {
    kind: 'input',
    http: 422,
    grpc: 'FAILED_PRECONDITION',
    message:
      'The ciphertext was wrapped under a key version that is disabled; re-enable the version to unwrap it.',
  },
  KEY_VERSION_CURRENT_ERR: {
    kind: 'input',
    http: 409,
    grpc: 'FAILED_PRECONDITION',
    message: 'The current version of a key cannot be disabled; rotate the key first.',
  },
  ROTATION_NOT_CONVERGED: {
    kind: 'input',
    http: 409,
    grpc: 'FAILED_PRECONDITION',
    message: 'The rotation has not converged: the version is still in use or not every node has the new one.',
  },
  DEK_TOO_SHORT_ERR: {
    kind: 'input',
    http: 422,
    grpc: 'INVALID_ARGUMENT',
    message: 'The data encryption key is shorter than the 32 bytes the 256-bit algorithms need.',
  },
  PLAINTEXT_TOO_LARGE_ERR: {
    kind: 'input',
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The plaintext is larger than the limit for this operation.',
  },
  CIPHERTEXT_TOO_LARGE_ERR: {
    kind: 'input',
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The ciphertext would be larger than the limit for this API version.',
  },
  KEY_ID_MISMATCH_ERR: {
    kind: 'input',
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The key_id is unknown or does not match the ciphertext.',
  },
  RATE_LIMITED_ERR: {
    kind: 'transient',
    http: 429,
    grpc: 'RESOURCE_EXHAUSTED',
    message: 'Too many requests from this client; retry after the delay in Retry-After.',
  },
  UNSUPPORTED_VERSION_ERR: {
    kind: 'input',
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The requested KMS API version is not supported.',
  },

  // Identity and access, the console, identity management, onboarding (catalogue-access.ts)
  ...ACCESS_ERRORS,

  // Gateway dependencies
  HSM_UNAVAILABLE: {
    kind: 'transient',
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The HSM is not available.',
  },
  HSM_PIN_INCORRECT: {
    kind: 'internal',
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The HSM token is unusable: the login was refused.',
  },
  HSM_PIN_LOCKED: {
    kind: 'internal',
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The HSM token is unusable: its PIN is locked.',
  },
  HSM_KEY_OBJECT_MISSING: {
    kind: 'transient',
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The HSM cannot find the key object right now; the key is not destroyed.',
  },
  HSM_KEY_OBJECT_REFUSED: {
    kind: 'internal',
    http: 500,
    grpc: 'INTERNAL',
    message: "A key object under the key's label fails keygate's checks; it is not used.",
  },
  HSM_ERROR: { kind: 'internal', http: 500, grpc: 'INTERNAL', message: 'The HSM reported an error.' },
  AUDIT_UNAVAILABLE: {
    kind: 'transient',
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The audit log cannot be written; the operation was not performed.',
  },
  STORE_UNAVAILABLE: {
    kind: 'transient',
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The key metadata store is not available.',
  },
  OVERLOADED: {
    kind: 'transient',
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The service is at capacity; the request was not performed. Retry after a short delay.',
  },
  DEADLINE_EXCEEDED: {
    kind: 'transient',
    http: 504,
    grpc: 'DEADLINE_EXCEEDED',
    message: "The caller's deadline passed before the operation could run; it was not performed.",
  },

  // Shim to gateway
  GATEWAY_UNAVAILABLE: {
    kind: 'transient',
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The key gateway is not reachable and the key is not cached.',
  },
  GATEWAY_TIMEOUT: {
    kind: 'transient',
    http: 504,
    grpc: 'DEADLINE_EXCEEDED',
    message: 'The key gateway did not answer in time.',
  },
  GATEWAY_REFUSED: {
    kind: 'auth',
    http: 403,
    grpc: 'PERMISSION_DENIED',
    message: 'The key gateway refused the request.',
  },
  GATEWAY_PROTOCOL_ERR: {
    kind: 'internal',
    http: 502,
    grpc: 'INTERNAL',
    message: 'The key gateway sent an answer that could not be understood.',
  },
  NOT_READY: {
    kind: 'transient',
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The service is starting and not ready yet.',
  },

  // Process level
  CONFIG_INVALID: { kind: 'internal', http: 500, grpc: 'INTERNAL', message: 'The configuration is invalid.' },
  SOCKET_IN_USE: {
    kind: 'internal',
    http: 500,
    grpc: 'INTERNAL',
    message: 'Another server is already listening on the socket.',
  },
  HEALTH_PORT_IN_USE: {
    kind: 'internal',
    http: 500,
    grpc: 'INTERNAL',
    message: 'Another process is already listening on the health port.',
  },
  AUDIT_ANCHOR_MISMATCH: {
    kind: 'internal',
    http: 500,
    grpc: 'INTERNAL',
    message: 'The audit log is behind or differs from its anchor: records may have been removed.',
  },
  INTERNAL_ERR: { kind: 'internal', http: 500, grpc: 'INTERNAL', message: 'An internal error occurred.' },
} as const satisfies Record<string, ErrorSpec>;

/** The closed union of every stable error code. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** Every error code, in catalogue order. */
export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as readonly ErrorCode[];

/** Returns true when `value` is a known error code. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CATALOGUE, value);
}

/** The kind of `code`: what callers decide on instead of lists of codes. */
export function errorKind(code: ErrorCode): ErrorKind {
  return ERROR_CATALOGUE[code].kind;
}
