/**
 * Ports of the shim core. Adapters (the undici gateway client, timers, the system clock) implement
 * them outside core/, so the core is tested with fakes and does no I/O itself.
 */

/** A DEK wrapped by the gateway under the root key's version `keyVersionId`. */
export interface WrapResult {
  readonly wrappedDek: Buffer;
  readonly keyVersionId: string;
}

/** A DEK unwrapped by the gateway. The caller owns `dek` and zeroes it. */
export interface UnwrapResult {
  readonly dek: Buffer;
  readonly keyVersionId: string;
}

/**
 * The central key gateway (Key Protect compatible). Implementations enforce their own total
 * deadline and throw only KeygateError with gateway codes (GATEWAY_UNAVAILABLE, GATEWAY_TIMEOUT,
 * GATEWAY_REFUSED, GATEWAY_PROTOCOL_ERR, KEY_*_ERR, UNPROCESSABLE_CIPHERTEXT_ERR).
 */
export interface GatewayClient {
  wrap(dek: Uint8Array, aad: readonly string[]): Promise<WrapResult>;
  unwrap(wrappedDek: Uint8Array, aad: readonly string[]): Promise<UnwrapResult>;
}

/** Milliseconds since the epoch; injected so that expiry tests are deterministic. */
export interface Clock {
  now(): number;
}

/** The real clock. */
export const systemClock: Clock = { now: () => Date.now() };

/** Things the core reports for logs; the adapter behind it is a pino child logger. */
export interface CoreEvents {
  keyIdChanged(from: string | undefined, to: string): void;
  healthChanged(healthz: string): void;
}
