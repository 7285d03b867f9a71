import { asKeygateError, type KeygateError } from '@keygate/shared/errors';

/** A gRPC error as both servers send it: status code, fixed text, and trailer metadata. */
export interface StatusError {
  readonly code: number;
  readonly details: string;
  readonly message: string;
  /** Trailers: `keygate-code`, the stable error code (docs/errors.md). */
  readonly trailers: Readonly<Record<string, string>>;
}

/** The gRPC error for `err`: the code's gRPC status and fixed text, never an internal message. */
export function toStatus(err: unknown): { error: StatusError; keygate: KeygateError } {
  const keygate = asKeygateError(err);
  return {
    error: {
      code: keygate.grpcStatus,
      details: keygate.message,
      message: keygate.message,
      trailers: { 'keygate-code': keygate.code },
    },
    keygate,
  };
}
