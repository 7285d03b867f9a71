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

/** Per-call options of a gateway call. */
export interface CallOptions {
  /**
   * How long the caller will still wait, in ms (what is left of its deadline after waiting for a
   * free slot). The client finishes within it and tells the gateway (x-keygate-timeout-ms).
   */
  readonly budgetMs?: number;
}

/**
 * The central key gateway (Key Protect compatible). Implementations enforce their own total
 * deadline and throw only KeygateError with gateway codes (GATEWAY_UNAVAILABLE, GATEWAY_TIMEOUT,
 * GATEWAY_REFUSED, GATEWAY_PROTOCOL_ERR, KEY_*_ERR, UNPROCESSABLE_CIPHERTEXT_ERR, OVERLOADED).
 *
 * Key-state contract: KEY_ACTION_INVALID_STATE_ERR, KEY_NOT_FOUND_ERR and KEY_DELETED_ERR are
 * thrown only when the gateway's answer names that code (in its Key Protect error body, with the
 * code's HTTP status): the core drops every DEK on them. A status alone (a proxy's bare 404 or
 * 410, a wrong URL) is GATEWAY_PROTOCOL_ERR; outages, timeouts and any 5xx (HSM_KEY_OBJECT_MISSING,
 * the gateway's OVERLOADED) are GATEWAY_UNAVAILABLE or GATEWAY_TIMEOUT. OVERLOADED is thrown only
 * by the shim's own limiter (it shed the call without sending it).
 */
export interface GatewayClient {
  wrap(dek: Uint8Array, aad: readonly string[], options?: CallOptions): Promise<WrapResult>;
  unwrap(wrappedDek: Uint8Array, aad: readonly string[], options?: CallOptions): Promise<UnwrapResult>;
  /** Releases connections and timers; later calls are not expected. */
  close(): Promise<void>;
}

/** Things the core reports for logs; the adapter behind it is a pino child logger. */
export interface CoreEvents {
  keyIdChanged(from: string | undefined, to: string): void;
  healthChanged(healthz: string): void;
}
