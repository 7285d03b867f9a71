import type { GrpcStatusName } from './grpc-status.js';

/** One entry of the error catalogue: what a client sees for a code, on every transport. */
export interface ErrorSpec {
  /** HTTP status on the gateway API (and on the shim's health endpoints). */
  readonly http: number;
  /** gRPC status the shim answers kube-apiserver with. */
  readonly grpc: GrpcStatusName;
  /** Fixed client-facing text. Never contains request data, key material or internal causes. */
  readonly message: string;
}

/**
 * The closed catalogue of keygate error codes. Every code has exactly one HTTP status, one gRPC
 * status and one line in docs/errors.md (shared/src/errors/catalogue.test.ts keeps them in step).
 * Codes are stable: clients and runbooks match on them. Add codes; never rename or reuse one.
 */
export const ERROR_CATALOGUE = {
  // Request shape (gateway API, Key Protect compatible names)
  BAD_BODY_ERR: {
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The request body is malformed or is missing required fields.',
  },
  INVALID_FIELD_ERR: {
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'A field of the request has an invalid value.',
  },
  INSTANCE_HEADER_MISSING_ERR: {
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The bluemix-instance header is missing or invalid.',
  },
  BODY_TOO_LARGE_ERR: {
    http: 413,
    grpc: 'INVALID_ARGUMENT',
    message: 'The request body is larger than the limit.',
  },
  INVALID_QUERY_PARAM_ERR: {
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'A query parameter of the request is not supported or has an invalid value.',
  },
  UNSUPPORTED_MEDIA_TYPE_ERR: {
    http: 415,
    grpc: 'INVALID_ARGUMENT',
    message: 'The request content type is not supported.',
  },
  NOT_FOUND_ERR: { http: 404, grpc: 'NOT_FOUND', message: 'The requested resource does not exist.' },
  METHOD_NOT_ALLOWED_ERR: {
    http: 405,
    grpc: 'UNIMPLEMENTED',
    message: 'The method is not allowed on this resource.',
  },

  // Keys and ciphertexts
  KEY_NOT_FOUND_ERR: {
    http: 404,
    grpc: 'FAILED_PRECONDITION',
    message: 'The key does not exist in this instance.',
  },
  KEY_DELETED_ERR: {
    http: 410,
    grpc: 'FAILED_PRECONDITION',
    message: 'The key has been destroyed; data wrapped under it cannot be unwrapped.',
  },
  KEY_ACTION_INVALID_STATE_ERR: {
    http: 409,
    grpc: 'FAILED_PRECONDITION',
    message: 'The key is not in a state that allows this action.',
  },
  KEY_ALREADY_EXISTS_ERR: {
    http: 409,
    grpc: 'ALREADY_EXISTS',
    message: 'A key with this name already exists in this instance.',
  },
  UNPROCESSABLE_CIPHERTEXT_ERR: {
    http: 422,
    grpc: 'INVALID_ARGUMENT',
    message: 'The ciphertext is malformed, was tampered with, or belongs to another key, instance or aad.',
  },
  PLAINTEXT_TOO_LARGE_ERR: {
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The plaintext is larger than the limit for this operation.',
  },
  CIPHERTEXT_TOO_LARGE_ERR: {
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The ciphertext would be larger than the limit for this API version.',
  },
  KEY_ID_MISMATCH_ERR: {
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The key_id is unknown or does not match the ciphertext.',
  },
  RATE_LIMITED_ERR: {
    http: 429,
    grpc: 'RESOURCE_EXHAUSTED',
    message: 'Too many requests from this client; retry after the delay in Retry-After.',
  },
  UNSUPPORTED_VERSION_ERR: {
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The requested KMS API version is not supported.',
  },

  // Identity and access
  AUTH_CERT_REQUIRED: {
    http: 401,
    grpc: 'UNAUTHENTICATED',
    message: 'A valid client certificate is required.',
  },
  AUTH_TOKEN_MISSING: { http: 401, grpc: 'UNAUTHENTICATED', message: 'A bearer access token is required.' },
  AUTH_TOKEN_INVALID: { http: 401, grpc: 'UNAUTHENTICATED', message: 'The access token is invalid.' },
  AUTH_TOKEN_EXPIRED: { http: 401, grpc: 'UNAUTHENTICATED', message: 'The access token has expired.' },
  AUTH_TOKEN_CERT_MISMATCH: {
    http: 401,
    grpc: 'UNAUTHENTICATED',
    message: 'The access token is bound to another client certificate.',
  },
  AUTH_APIKEY_INVALID: { http: 400, grpc: 'UNAUTHENTICATED', message: 'The API key is not valid.' },
  AUTH_GRANT_TYPE_INVALID: {
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The grant type is missing or not supported.',
  },
  FORBIDDEN_ERR: {
    http: 403,
    grpc: 'PERMISSION_DENIED',
    message: 'The caller is not allowed to perform this action on this instance or key.',
  },

  // Gateway dependencies
  HSM_UNAVAILABLE: { http: 503, grpc: 'UNAVAILABLE', message: 'The HSM is not available.' },
  HSM_PIN_INCORRECT: {
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The HSM token is unusable: the login was refused.',
  },
  HSM_PIN_LOCKED: {
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The HSM token is unusable: its PIN is locked.',
  },
  HSM_KEY_OBJECT_MISSING: {
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The HSM cannot find the key object right now; the key is not destroyed.',
  },
  HSM_ERROR: { http: 500, grpc: 'INTERNAL', message: 'The HSM reported an error.' },
  AUDIT_UNAVAILABLE: {
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The audit log cannot be written; the operation was not performed.',
  },
  STORE_UNAVAILABLE: { http: 503, grpc: 'UNAVAILABLE', message: 'The key metadata store is not available.' },
  OVERLOADED: {
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The service is at capacity; the request was not performed. Retry after a short delay.',
  },
  DEADLINE_EXCEEDED: {
    http: 504,
    grpc: 'DEADLINE_EXCEEDED',
    message: "The caller's deadline passed before the operation could run; it was not performed.",
  },

  // Shim to gateway
  GATEWAY_UNAVAILABLE: {
    http: 503,
    grpc: 'UNAVAILABLE',
    message: 'The key gateway is not reachable and the key is not cached.',
  },
  GATEWAY_TIMEOUT: {
    http: 504,
    grpc: 'DEADLINE_EXCEEDED',
    message: 'The key gateway did not answer in time.',
  },
  GATEWAY_REFUSED: { http: 403, grpc: 'PERMISSION_DENIED', message: 'The key gateway refused the request.' },
  GATEWAY_PROTOCOL_ERR: {
    http: 502,
    grpc: 'INTERNAL',
    message: 'The key gateway sent an answer that could not be understood.',
  },
  NOT_READY: { http: 503, grpc: 'UNAVAILABLE', message: 'The service is starting and not ready yet.' },

  // Process level
  CONFIG_INVALID: { http: 500, grpc: 'INTERNAL', message: 'The configuration is invalid.' },
  SOCKET_IN_USE: {
    http: 500,
    grpc: 'INTERNAL',
    message: 'Another server is already listening on the socket.',
  },
  HEALTH_PORT_IN_USE: {
    http: 500,
    grpc: 'INTERNAL',
    message: 'Another process is already listening on the health port.',
  },
  AUDIT_ANCHOR_MISMATCH: {
    http: 500,
    grpc: 'INTERNAL',
    message: 'The audit log is behind or differs from its anchor: records may have been removed.',
  },
  INTERNAL_ERR: { http: 500, grpc: 'INTERNAL', message: 'An internal error occurred.' },
} as const satisfies Record<string, ErrorSpec>;

/** The closed union of every stable error code. */
export type ErrorCode = keyof typeof ERROR_CATALOGUE;

/** Every error code, in catalogue order. */
export const ERROR_CODES = Object.keys(ERROR_CATALOGUE) as readonly ErrorCode[];

/** Returns true when `value` is a known error code. */
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CATALOGUE, value);
}
