import { type ErrorCode, errorKind, isKeygateError } from '@keygate/shared/errors';

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
  if (!isKeygateError(err)) return { text: 'internal error talking to the gateway', transient: false };
  // The shim's own limiter shed the call without sending it: says nothing about the gateway.
  if (err.code === 'OVERLOADED') return undefined;
  const kind = errorKind(err.code);
  if (kind === 'input') return undefined;
  return { text: problemText(err.code), transient: kind === 'transient' };
}

/** The healthz text of a key state the gateway answered. */
export function keyStateText(code: ErrorCode | undefined): string {
  if (code === 'KEY_DELETED_ERR') return 'root key destroyed';
  if (code === 'KEY_NOT_FOUND_ERR') return 'root key not found';
  if (code === 'KEY_USAGE_LIMIT_ERR') return 'root key version at its usage limit (rotate the key)';
  return 'root key not active';
}

const GATEWAY_TEXT: Partial<Record<ErrorCode, string>> = {
  GATEWAY_UNAVAILABLE: 'gateway unavailable',
  GATEWAY_TIMEOUT: 'gateway timeout',
  GATEWAY_REFUSED: 'gateway refused the request',
  GATEWAY_PROTOCOL_ERR: 'gateway protocol error',
};

function problemText(code: ErrorCode): string {
  if (errorKind(code) === 'key-state') return keyStateText(code);
  return GATEWAY_TEXT[code] ?? `gateway error ${code}`;
}
