import { DekEntry } from './dek-entry.js';

export interface DekCacheOptions {
  /** Most entries held; 0 disables the cache. */
  readonly maxEntries: number;
  /** Lifetime of an entry from its insertion in ms; 0 disables the cache. */
  readonly ttlMs: number;
}

interface Slot {
  readonly entry: DekEntry;
  readonly expiresAt: number;
}

/**
 * An LRU of unwrapped DEKs keyed by their wrapped form, bounded in size and age. Every entry that
 * leaves (evicted, expired, cleared) is zeroed.
 */
export class DekCache {
  readonly #slots = new Map<string, Slot>();
  readonly #options: DekCacheOptions;
  /** The key last inserted or hit, i.e. the last in LRU order: hits on it need no reordering. */
  #mru: string | undefined;
  hits = 0;
  misses = 0;
  evictions = 0;

  constructor(options: DekCacheOptions) {
    this.#options = options;
  }

  get enabled(): boolean {
    return this.#options.maxEntries > 0 && this.#options.ttlMs > 0;
  }

  get size(): number {
    return this.#slots.size;
  }

  /** The live entry for `wrapped`, or undefined (expired entries are removed and zeroed). */
  get(wrapped: string, now: number): DekEntry | undefined {
    const slot = this.#slots.get(wrapped);
    if (!slot) {
      this.misses++;
      return undefined;
    }
    if (now >= slot.expiresAt) {
      this.#remove(wrapped, slot);
      this.misses++;
      return undefined;
    }
    // Refresh LRU order: Map iterates in insertion order, so re-insert at the end.
    if (wrapped !== this.#mru) {
      this.#slots.delete(wrapped);
      this.#slots.set(wrapped, slot);
      this.#mru = wrapped;
    }
    this.hits++;
    return slot.entry;
  }

  /** Caches a private copy of `dek` under `wrapped`; returns the cached entry (or undefined when disabled). */
  put(wrapped: string, dek: Uint8Array, now: number): DekEntry | undefined {
    if (!this.enabled) return undefined;
    const old = this.#slots.get(wrapped);
    if (old) this.#remove(wrapped, old);
    const entry = new DekEntry(dek);
    this.#slots.set(wrapped, { entry, expiresAt: now + this.#options.ttlMs });
    this.#mru = wrapped;
    while (this.#slots.size > this.#options.maxEntries) {
      const oldest = this.#slots.entries().next().value;
      if (!oldest) break;
      this.#remove(oldest[0], oldest[1]);
    }
    return entry;
  }

  /** Removes expired entries (called from a timer so idle DEKs do not linger in memory). */
  sweep(now: number): void {
    for (const [k, slot] of this.#slots) if (now >= slot.expiresAt) this.#remove(k, slot);
  }

  /** Zeroes and drops every entry. */
  clear(): void {
    for (const [k, slot] of this.#slots) this.#remove(k, slot);
  }

  #remove(key: string, slot: Slot): void {
    this.#slots.delete(key);
    if (key === this.#mru) this.#mru = undefined;
    this.evictions++;
    slot.entry.destroy();
  }
}
