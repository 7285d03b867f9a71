import type { GcmSealed, Hsm, HsmStatus, KeyObjectRef } from '../../core/keys/hsm.js';

/**
 * Development and benchmark only (`hsm.simulatedLatencyMs`): makes any Hsm behave like a network
 * HSM with a fixed round trip. Every call holds one of `channels` slots (the HSM sessions) for at
 * least `latencyMs`, the real work overlapping the wait, so the most calls per second is
 * `channels / latencyMs`. Errors and results are the wrapped adapter's.
 */
export class SimulatedLatencyHsm implements Hsm {
  readonly #inner: Hsm;
  readonly #latencyMs: number;
  readonly #channels: number;
  readonly #waiters: Array<() => void> = [];
  #inFlight = 0;

  constructor(inner: Hsm, latencyMs: number, channels: number) {
    if (!(latencyMs > 0) || !Number.isInteger(channels) || channels < 1) {
      throw new RangeError('simulated latency needs latencyMs > 0 and channels >= 1');
    }
    this.#inner = inner;
    this.#latencyMs = latencyMs;
    this.#channels = channels;
  }

  get ivBytes(): number {
    return this.#inner.ivBytes;
  }

  generateKey(ref: KeyObjectRef): Promise<void> {
    return this.#timed(() => this.#inner.generateKey(ref));
  }

  encrypt(ref: KeyObjectRef, plaintext: Uint8Array, aad: Uint8Array): Promise<GcmSealed> {
    return this.#timed(() => this.#inner.encrypt(ref, plaintext, aad));
  }

  decrypt(ref: KeyObjectRef, sealed: GcmSealed, aad: Uint8Array): Promise<Buffer> {
    return this.#timed(() => this.#inner.decrypt(ref, sealed, aad));
  }

  reportMissing(ref: KeyObjectRef): void {
    this.#inner.reportMissing(ref);
  }

  destroyKey(ref: KeyObjectRef): Promise<void> {
    return this.#timed(() => this.#inner.destroyKey(ref));
  }

  status(): HsmStatus {
    return this.#inner.status();
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  async #timed<T>(op: () => Promise<T>): Promise<T> {
    if (this.#inFlight < this.#channels) this.#inFlight++;
    else await new Promise<void>((resolve) => this.#waiters.push(resolve));
    try {
      const wait = new Promise<void>((resolve) => setTimeout(resolve, this.#latencyMs));
      const [out] = await Promise.all([op(), wait]);
      return out;
    } finally {
      // Hand the slot straight to the next waiter, or free it.
      const next = this.#waiters.shift();
      if (next) next();
      else this.#inFlight--;
    }
  }
}
