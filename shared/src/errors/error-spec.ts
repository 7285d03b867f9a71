import type { GrpcStatusName } from './grpc-status.js';

/**
 * How callers decide on an error, one closed set for both programs:
 * - `input`: the request is wrong; the same request fails the same way, and it says nothing
 *   about the health of the service that refused it;
 * - `auth`: the caller's identity or rights were refused (audited as `denied`);
 * - `key-state`: the root key is not found, not active or destroyed (a shim drops its DEKs);
 * - `transient`: a dependency is down, busy or slow; the same request may succeed later;
 * - `internal`: a fault an operator or a fix must clear (configuration, HSM login, a bug);
 *   retrying does not help.
 */
export const ERROR_KINDS = ['input', 'auth', 'key-state', 'transient', 'internal'] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

/** One entry of the error catalogue: what a client sees for a code, on every transport. */
export interface ErrorSpec {
  /** How callers decide on it (see ERROR_KINDS). */
  readonly kind: ErrorKind;
  /** HTTP status on the gateway API (and on the shim's health endpoints). */
  readonly http: number;
  /** gRPC status the shim answers kube-apiserver with. */
  readonly grpc: GrpcStatusName;
  /** Fixed client-facing text. Never contains request data, key material or internal causes. */
  readonly message: string;
}
