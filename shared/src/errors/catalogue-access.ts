import type { ErrorSpec } from './error-spec.js';

/**
 * The identity, access, console and onboarding part of the error catalogue (ERROR_CATALOGUE in
 * catalogue.ts spreads it in at its place, so codes, order and docs/errors.md stay as they were).
 */
export const ACCESS_ERRORS = {
  // Identity and access
  AUTH_CERT_REQUIRED: {
    kind: 'auth',
    http: 401,
    grpc: 'UNAUTHENTICATED',
    message: 'A valid client certificate is required.',
  },
  AUTH_TOKEN_MISSING: {
    kind: 'auth',
    http: 401,
    grpc: 'UNAUTHENTICATED',
    message: 'A bearer access token is required.',
  },
  AUTH_TOKEN_INVALID: {
    kind: 'auth',
    http: 401,
    grpc: 'UNAUTHENTICATED',
    message: 'The access token is invalid.',
  },
  AUTH_TOKEN_EXPIRED: {
    kind: 'auth',
    http: 401,
    grpc: 'UNAUTHENTICATED',
    message: 'The access token has expired.',
  },
  AUTH_TOKEN_CERT_MISMATCH: {
    kind: 'auth',
    http: 401,
    grpc: 'UNAUTHENTICATED',
    message: 'The access token is bound to another client certificate.',
  },
  AUTH_APIKEY_INVALID: {
    kind: 'auth',
    http: 400,
    grpc: 'UNAUTHENTICATED',
    message: 'The API key is not valid.',
  },
  AUTH_GRANT_TYPE_INVALID: {
    kind: 'auth',
    http: 400,
    grpc: 'INVALID_ARGUMENT',
    message: 'The grant type is missing or not supported.',
  },
  FORBIDDEN_ERR: {
    kind: 'auth',
    http: 403,
    grpc: 'PERMISSION_DENIED',
    message: 'The caller is not allowed to perform this action on this instance or key.',
  },
  AUTH_TOKEN_REVOKED: {
    kind: 'auth',
    http: 401,
    grpc: 'UNAUTHENTICATED',
    message: 'The API key or identity the access token was issued to has been revoked or changed.',
  },

  // The web console (docs/console.md)
  CONSOLE_SESSION_EXPIRED: {
    kind: 'auth',
    http: 401,
    grpc: 'UNAUTHENTICATED',
    message: 'The console session has ended or was never started; log in again.',
  },
  CONSOLE_CSRF_REFUSED: {
    kind: 'auth',
    http: 403,
    grpc: 'PERMISSION_DENIED',
    message:
      'The form was not sent from this console session (missing or wrong CSRF token, or a foreign origin).',
  },
  CONSOLE_LOGIN_LOCKED: {
    kind: 'auth',
    http: 429,
    grpc: 'RESOURCE_EXHAUSTED',
    message: 'Too many failed console logins from this address; wait and try again.',
  },
  CONSOLE_HOST_REFUSED: {
    kind: 'auth',
    http: 421,
    grpc: 'PERMISSION_DENIED',
    message: 'The console does not answer to this host name (not in console.allowedHosts).',
  },

  // Identity management (identities in PostgreSQL)
  IDENTITIES_READ_ONLY: {
    kind: 'input',
    http: 409,
    grpc: 'FAILED_PRECONDITION',
    message: 'Identities are set in the gateway config file and cannot be changed at run time.',
  },
  IDENTITY_NOT_FOUND: {
    kind: 'input',
    http: 404,
    grpc: 'NOT_FOUND',
    message: 'The identity does not exist.',
  },
  IDENTITY_EXISTS: {
    kind: 'input',
    http: 409,
    grpc: 'ALREADY_EXISTS',
    message: 'An identity with this name already exists.',
  },
  // Cluster onboarding (`keygate-gateway clusters`, docs/clusters.md)
  CLUSTER_EXISTS: {
    kind: 'input',
    http: 409,
    grpc: 'ALREADY_EXISTS',
    message: 'A cluster or identity with this name already exists.',
  },
  CLUSTER_NOT_FOUND: {
    kind: 'input',
    http: 404,
    grpc: 'NOT_FOUND',
    message: 'The cluster does not exist.',
  },
  CLUSTERS_NEED_TOKENS: {
    kind: 'input',
    http: 409,
    grpc: 'FAILED_PRECONDITION',
    message: 'Clusters can be onboarded only in token mode (a tokens section in the gateway config).',
  },
  APIKEY_NOT_FOUND: {
    kind: 'input',
    http: 404,
    grpc: 'NOT_FOUND',
    message: 'The API key does not exist.',
  },
} as const satisfies Record<string, ErrorSpec>;
