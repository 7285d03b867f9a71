import { isKeygateError } from '@keygate/shared/errors';

/** A gateway problem as Status reports it. */
export interface HealthProblem {
  /** The `healthz` text. */
  readonly text: string;
  /** The gateway is unreachable or slow (not a refusal or a key state): the current DEK may carry on. */
  readonly transient: boolean;
}

/**
 * What Status reports after a gateway call failed with `err`, or undefined when the failure says
 * nothing about the gateway's health (a tampered ciphertext, say).
 */
export function healthProblemOf(err: unknown): HealthProblem | undefined {
  const text = problemText(err);
  if (text === undefined) return undefined;
  const transient =
    isKeygateError(err) && (err.code === 'GATEWAY_UNAVAILABLE' || err.code === 'GATEWAY_TIMEOUT');
  return { text, transient };
}

function problemText(err: unknown): string | undefined {
  if (!isKeygateError(err)) return 'internal error talking to the gateway';
  switch (err.code) {
    case 'UNPROCESSABLE_CIPHERTEXT_ERR':
    case 'KEY_ID_MISMATCH_ERR':
    case 'CIPHERTEXT_TOO_LARGE_ERR':
    case 'PLAINTEXT_TOO_LARGE_ERR':
    // The shim's own limiter shed the call without sending it: says nothing about the gateway.
    case 'OVERLOADED':
      return undefined;
    case 'GATEWAY_UNAVAILABLE':
      return 'gateway unavailable';
    case 'GATEWAY_TIMEOUT':
      return 'gateway timeout';
    case 'GATEWAY_REFUSED':
      return 'gateway refused the request';
    case 'GATEWAY_PROTOCOL_ERR':
      return 'gateway protocol error';
    case 'KEY_DELETED_ERR':
      return 'root key destroyed';
    case 'KEY_ACTION_INVALID_STATE_ERR':
      return 'root key not active';
    case 'KEY_NOT_FOUND_ERR':
      return 'root key not found';
    default:
      return `gateway error ${err.code}`;
  }
}
