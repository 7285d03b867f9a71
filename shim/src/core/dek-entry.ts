import { copySecret, deriveDataKey, zeroize } from '@keygate/shared/crypto';
import type { ShimAlg } from '@keygate/shared/formats';

/**
 * One unwrapped DEK with its derived payload keys (derived once per algorithm, then reused).
 * Owns its buffers: `destroy()` zeroes the DEK and every derived key.
 */
export class DekEntry {
  readonly #dek: Buffer;
  readonly #derived = new Map<ShimAlg, Buffer>();
  #destroyed = false;

  /** Takes a private copy of `dek` (allocSecret: off the pool and the V8 heap); the caller keeps its own. */
  constructor(dek: Uint8Array) {
    this.#dek = copySecret(dek);
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

  destroy(): void {
    if (this.#destroyed) return;
    this.#destroyed = true;
    zeroize(this.#dek, ...this.#derived.values());
    this.#derived.clear();
  }
}
