import type { ServiceError } from '@grpc/grpc-js';
import { Metadata } from '@grpc/grpc-js';
import { asKeygateError, type KeygateError } from '@keygate/shared/errors';

/** The gRPC error for `err`: the code's gRPC status and fixed text, never an internal message. */
export function toStatus(err: unknown): { error: Partial<ServiceError>; keygate: KeygateError } {
  const keygate = asKeygateError(err);
  const metadata = new Metadata();
  metadata.set('keygate-code', keygate.code);
  return {
    error: { code: keygate.grpcStatus, details: keygate.message, message: keygate.message, metadata },
    keygate,
  };
}
