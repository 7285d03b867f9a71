import { KeygateError, zeroize } from '@keygate/shared';
import { keyIdFor } from './key-id.js';
import type { KeyStatus } from './key-status.js';
import type { GatewayClient } from './ports.js';

/** A DEK wrapped under the root key, with the key_id of the version that wrapped it. */
export interface Wrapped {
  readonly wrappedDek: Buffer;
  readonly keyId: string;
}

const MIN_DEK_BYTES = 16;
const MAX_DEK_BYTES = 64;

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

  constructor(gateway: GatewayClient, key: KeyStatus, prefix: string, crkId: string, onKeyLost: () => void) {
    this.#gateway = gateway;
    this.#key = key;
    this.#prefix = prefix;
    // Binds every wrapped DEK to this use of the root key; the same on every node.
    this.#aad = ['keygate-shim', crkId];
    this.#onKeyLost = onKeyLost;
  }

  /** Wraps `dek` (the caller keeps and zeroes it); KEY_* or gateway errors otherwise. */
  async wrap(dek: Buffer): Promise<Wrapped> {
    const r = await this.#call(() => this.#gateway.wrap(dek, this.#aad));
    if (this.#key.refusal !== undefined) throw this.#key.refusalError();
    let keyId: string;
    try {
      keyId = keyIdFor(this.#prefix, r.keyVersionId);
    } catch (cause) {
      throw this.#noteFailure(new KeygateError('GATEWAY_PROTOCOL_ERR', { cause }), this.#key.epoch);
    }
    return { wrappedDek: r.wrappedDek, keyId };
  }

  /** Unwraps `wrappedDek`; the caller owns the DEK returned and zeroes it. */
  async unwrap(wrappedDek: Buffer): Promise<Buffer> {
    const r = await this.#call(() => this.#gateway.unwrap(wrappedDek, this.#aad));
    if (this.#key.refusal !== undefined) {
      zeroize(r.dek);
      throw this.#key.refusalError();
    }
    if (r.dek.length < MIN_DEK_BYTES || r.dek.length > MAX_DEK_BYTES) {
      zeroize(r.dek);
      throw this.#noteFailure(
        new KeygateError('GATEWAY_PROTOCOL_ERR', { detail: { reason: 'DEK size' } }),
        this.#key.epoch,
      );
    }
    return r.dek;
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
