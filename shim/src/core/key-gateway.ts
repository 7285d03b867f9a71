import { type Clock, KeygateError, zeroize } from '@keygate/shared';
import { keyIdFor } from './key-id.js';
import type { KeyStatus } from './key-status.js';
import type { CallOptions, GatewayClient } from './ports.js';

/** A DEK wrapped under the root key, with the key_id of the version that wrapped it. */
export interface Wrapped {
  readonly wrappedDek: Buffer;
  readonly keyId: string;
}

/** Both payload algorithms are 256-bit (A256CBC-HS512, A256GCM): a shorter DEK would weaken them. */
export const MIN_DEK_BYTES = 32;
const MAX_DEK_BYTES = 64;
/** Kept from the caller's deadline for the answer's way back to it over gRPC. */
export const REPLY_MARGIN_MS = 50;

export interface KeyGatewayOptions {
  readonly gateway: GatewayClient;
  readonly key: KeyStatus;
  /** The key_id prefix of this root key. */
  readonly prefix: string;
  readonly crkId: string;
  readonly clock: Clock;
  /** Drops every DEK: an answer proved the key inactive or destroyed. */
  readonly onKeyLost: () => void;
}

/**
 * The core's calls to the gateway for one root key: the wrap aad, key_ids from the versions the
 * answers name, and every answer reported to KeyStatus with the ticket its call started with.
 * When an answer proves the key inactive or destroyed, `onKeyLost` drops every DEK; an answer
 * that arrives while the key is refused (sent before the refusal) is zeroed and refused too.
 */
export class KeyGateway {
  readonly #gateway: GatewayClient;
  readonly #key: KeyStatus;
  readonly #prefix: string;
  readonly #aad: readonly string[];
  readonly #onKeyLost: () => void;
  readonly #clock: Clock;

  constructor(o: KeyGatewayOptions) {
    this.#gateway = o.gateway;
    this.#key = o.key;
    this.#prefix = o.prefix;
    // Binds every wrapped DEK to this use of the root key; the same on every node.
    this.#aad = ['keygate-shim', o.crkId];
    this.#onKeyLost = o.onKeyLost;
    this.#clock = o.clock;
  }

  /**
   * Wraps `dek` (the caller keeps and zeroes it) within `deadline` (the clock's ms, when the
   * caller gives up); KEY_* or gateway errors otherwise.
   */
  async wrap(dek: Buffer, deadline?: number): Promise<Wrapped> {
    const options = this.#options(deadline);
    const r = await this.#call(() => this.#gateway.wrap(dek, this.#aad, options));
    if (this.#key.refusal !== undefined) throw this.#key.refusalError();
    let keyId: string;
    try {
      keyId = keyIdFor(this.#prefix, r.keyVersionId);
    } catch (cause) {
      throw this.#noteFailure(new KeygateError('GATEWAY_PROTOCOL_ERR', { cause }), this.#key.epoch);
    }
    return { wrappedDek: r.wrappedDek, keyId };
  }

  /** Unwraps `wrappedDek` within `deadline`; the caller owns the DEK returned and zeroes it. */
  async unwrap(wrappedDek: Buffer, deadline?: number): Promise<Buffer> {
    const options = this.#options(deadline);
    const r = await this.#call(() => this.#gateway.unwrap(wrappedDek, this.#aad, options));
    if (this.#key.refusal !== undefined) {
      zeroize(r.dek);
      throw this.#key.refusalError();
    }
    if (r.dek.length < MIN_DEK_BYTES) {
      // Not a fault of the gateway or of the key: this ciphertext's DEK is unusable here (input).
      const length = r.dek.length;
      zeroize(r.dek);
      throw new KeygateError('DEK_TOO_SHORT_ERR', { detail: { length, min: MIN_DEK_BYTES } });
    }
    if (r.dek.length > MAX_DEK_BYTES) {
      zeroize(r.dek);
      throw this.#noteFailure(
        new KeygateError('GATEWAY_PROTOCOL_ERR', { detail: { reason: 'DEK size' } }),
        this.#key.epoch,
      );
    }
    return r.dek;
  }

  /** The budget left before `deadline`, less the way back; none without a deadline (DEADLINE_MS applies). */
  #options(deadline: number | undefined): CallOptions | undefined {
    if (deadline === undefined) return undefined;
    return { budgetMs: Math.max(0, deadline - this.#clock.now().getTime() - REPLY_MARGIN_MS) };
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    const epoch = this.#key.epoch;
    let r: T;
    try {
      r = await fn();
    } catch (err) {
      throw this.#noteFailure(err, epoch);
    }
    this.#key.noteSuccess(epoch);
    return r;
  }

  #noteFailure(err: unknown, epoch: number): unknown {
    // Not active or destroyed: no DEK under the root key stays usable here (crypto-shredding on a
    // destroy; a disable stops local use too). Outages and timeouts are never key states.
    if (this.#key.noteFailure(err, epoch)) this.#onKeyLost();
    return err;
  }
}
