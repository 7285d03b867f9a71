import { KeygateError } from '@keygate/shared/errors';
import { errors } from 'jose';

/**
 * Translates a jose error into our codes: an expired token is AUTH_TOKEN_EXPIRED, anything else
 * jose rejects (signature, claims, format, algorithm, unknown kid) is AUTH_TOKEN_INVALID. jose's
 * code stays in the log detail as `vendorCode`.
 */
export function translateJoseError(err: unknown): KeygateError {
  if (err instanceof KeygateError) return err;
  if (err instanceof errors.JWTExpired) {
    return new KeygateError('AUTH_TOKEN_EXPIRED', { cause: err, detail: { vendorCode: err.code } });
  }
  if (err instanceof errors.JOSEError) {
    const detail: Record<string, string> = { vendorCode: err.code };
    if (err instanceof errors.JWTClaimValidationFailed) detail.claim = err.claim;
    return new KeygateError('AUTH_TOKEN_INVALID', { cause: err, detail });
  }
  return new KeygateError('AUTH_TOKEN_INVALID', { cause: err });
}
