import { deriveDataKey, zeroize } from '@keygate/shared/crypto';
import type { ShimAlg } from '@keygate/shared/formats';

/**
 * One unwrapped DEK with its derived payload keys (derived once per algorithm, then reused).
 * Owns its buffers: `destroy()` zeroes the DEK and every derived key.
 */
export class DekEntry {
  readonly #dek: Buffer;
  readonly #derived = new Map<ShimAlg, Buffer>();
  #destroyed = false;

  /** Takes a private copy of `dek`; the caller keeps ownership of its own buffer. */
  constructor(dek: Uint8Array) {
    this.#dek = Buffer.from(dek);
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }

  /** The payload key of `alg` for this DEK. */
  dataKey(alg: ShimAlg): Buffer {
    if (this.#destroyed) throw new Error('DEK entry used after destroy');
    let key = this.#derived.get(alg);
    if (!key) {
      key = deriveDataKey(this.#dek, alg);
      this.#derived.set(alg, key);
    }
    return key;
  }

  /** A fresh copy of the DEK itself (for the gateway wrap); the caller zeroes it. */
  copyDek(): Buffer {
    return Buffer.from(this.#dek);
  }

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    zeroize(this.#dek, ...this.#derived.values());
    this.#derived.clear();
  }
}
