/**
 * Coalesces concurrent calls with the same key into one: the first caller runs `fn`, later callers
 * share its promise until it settles.
 */
export class SingleFlight<K, V> {
  readonly #inflight = new Map<K, Promise<V>>();

  get size(): number {
    return this.#inflight.size;
  }

  run(key: K, fn: () => Promise<V>): Promise<V> {
    const running = this.#inflight.get(key);
    if (running) return running;
    const p = fn().finally(() => {
      this.#inflight.delete(key);
    });
    this.#inflight.set(key, p);
    return p;
  }
}
