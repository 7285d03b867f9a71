import {
  type Clock,
  constantTimeEqual,
  decodeShimCiphertext,
  encodeShimHeader,
  KeygateError,
  openShim,
  type Random,
  type ShimAlg,
  type ShimCiphertext,
  sealShim,
  zeroize,
} from '@keygate/shared';
import { CurrentDek, type DekLimits } from './current-dek.js';
import { DekCache } from './dek-cache.js';
import { DekEntry } from './dek-entry.js';
import { KeyGateway } from './key-gateway.js';
import { isKeyIdOf, keyIdPrefix } from './key-id.js';
import { type CoreStatus, KeyStatus } from './key-status.js';
import type { CoreEvents, GatewayClient } from './ports.js';
import { SingleFlight } from './single-flight.js';

export interface KmsCoreOptions {
  readonly instanceId: string;
  readonly crkId: string;
  readonly alg: ShimAlg;
  /** NUM_LEN_BYTES: size of a new DEK. */
  readonly dekBytes: number;
  /** NEW_DEK: wrap a fresh DEK for every Encrypt instead of reusing the current one. */
  readonly newDekPerEncrypt: boolean;
  readonly dekLimits: DekLimits;
  readonly cacheSize: number;
  /** CACHE_TIMEOUT_IN_HOURS in ms; 0 disables the DEK cache. */
  readonly cacheTtlMs: number;
  readonly gateway: GatewayClient;
  readonly clock: Clock;
  readonly random: Random;
  readonly events?: Partial<CoreEvents>;
}

export type { CoreStatus } from './key-status.js';

export interface Encrypted {
  readonly ciphertext: Buffer;
  readonly keyId: string;
}

/**
 * The shim's envelope core: local encryption under DEKs that the gateway wraps, a DEK cache and
 * the current-DEK policy; the key_id, key state and health live in KeyStatus. Invariants: a
 * ciphertext is sealed only with a DEK whose wrap succeeded; plaintext is returned only after the
 * AEAD tag verified; once the gateway proves the root key inactive or destroyed, every DEK is
 * zeroed and calls fail fast until a wrap succeeds again.
 */
export class KmsCore {
  readonly #o: KmsCoreOptions;
  readonly #prefix: string;
  readonly #cache: DekCache;
  readonly #unwraps = new SingleFlight<string, DekEntry>();
  readonly #rotation = new SingleFlight<'current', void>();
  readonly #key: KeyStatus;
  readonly #gateway: KeyGateway;
  #current: CurrentDek | undefined;

  constructor(options: KmsCoreOptions) {
    this.#o = options;
    this.#prefix = keyIdPrefix(options.instanceId, options.crkId);
    this.#cache = new DekCache({ maxEntries: options.cacheSize, ttlMs: options.cacheTtlMs });
    this.#key = new KeyStatus(() => this.#canEncryptLocally(), options.events);
    this.#gateway = new KeyGateway({
      gateway: options.gateway,
      key: this.#key,
      prefix: this.#prefix,
      crkId: options.crkId,
      clock: options.clock,
      onKeyLost: () => this.#dropKeys(),
    });
  }

  /**
   * Cached health and key_id, for Status. The same object comes back for as long as the state it
   * reflects is unchanged (callers may cache what they build from it by identity).
   */
  status(): CoreStatus {
    return this.#key.status();
  }

  #canEncryptLocally(): boolean {
    if (this.#o.newDekPerEncrypt) return false;
    const cur = this.#current;
    return (
      cur !== undefined &&
      cur.keyId === this.#key.keyId &&
      cur.usable(this.#o.clock.now().getTime(), this.#o.dekLimits)
    );
  }

  /** Numbers for /metrics. */
  stats(): { cacheHits: number; cacheMisses: number; cacheSize: number; currentDekUses: number } {
    return {
      cacheHits: this.#cache.hits,
      cacheMisses: this.#cache.misses,
      cacheSize: this.#cache.size,
      currentDekUses: this.#current?.uses ?? 0,
    };
  }

  /**
   * Encrypts `plaintext` into a shim ciphertext of at most `maxBytes`. The hot path answers
   * synchronously (no promise, no microtask) when the current DEK is usable, and throws
   * synchronously on a bad request; otherwise returns a promise. `deadline` (the clock's ms) is
   * when the caller gives up: gateway calls fit inside it.
   */
  encrypt(plaintext: Uint8Array, maxBytes: number, deadline?: number): Encrypted | Promise<Encrypted> {
    if (this.#key.refusal !== undefined) throw this.#key.refusalError();
    if (!this.#o.newDekPerEncrypt) {
      const cur = this.#current;
      if (cur?.usable(this.#o.clock.now().getTime(), this.#o.dekLimits)) {
        const ciphertext = this.#seal(cur.entry, cur.wrappedDek, cur.keyId, plaintext, maxBytes, cur.header);
        cur.uses++;
        return { ciphertext, keyId: cur.keyId };
      }
    }
    return this.#encryptSlow(plaintext, maxBytes, deadline);
  }

  async #encryptSlow(plaintext: Uint8Array, maxBytes: number, deadline?: number): Promise<Encrypted> {
    if (this.#o.newDekPerEncrypt) return this.#encryptFresh(plaintext, maxBytes, deadline);
    for (let attempt = 0; attempt < 3; attempt++) {
      // The key may have been found disabled or destroyed while this call waited for a rotation.
      if (this.#key.refusal !== undefined) throw this.#key.refusalError();
      const now = this.#o.clock.now().getTime();
      const cur = this.#current;
      // Check and seal with no await in between, so `cur` cannot be replaced and zeroed meanwhile.
      if (cur?.usable(now, this.#o.dekLimits)) {
        const ciphertext = this.#seal(cur.entry, cur.wrappedDek, cur.keyId, plaintext, maxBytes, cur.header);
        cur.uses++;
        return { ciphertext, keyId: cur.keyId };
      }
      await this.#rotation.run('current', () => this.#rotateCurrent(true, deadline));
    }
    throw new KeygateError('NOT_READY', { detail: { reason: 'no usable DEK after rotation' } });
  }

  /**
   * Decrypts a shim ciphertext. `requestKeyId` (v2) must name this root key and equal the key_id
   * inside the ciphertext; v1 passes undefined and only the ciphertext's key_id is checked. The
   * hot path answers synchronously (no promise, no microtask) when the DEK is cached, and throws
   * synchronously on a bad request; only a cache miss returns a promise (and goes through the
   * single-flight unwrap). `deadline` as for encrypt().
   */
  decrypt(
    ciphertext: Uint8Array,
    requestKeyId: string | undefined,
    maxBytes: number,
    deadline?: number,
  ): Buffer | Promise<Buffer> {
    if (this.#key.refusal !== undefined) throw this.#key.refusalError();
    if (requestKeyId !== undefined && !isKeyIdOf(this.#prefix, requestKeyId)) {
      throw new KeygateError('KEY_ID_MISMATCH_ERR', { detail: { reason: 'unknown key_id' } });
    }
    const parsed = decodeShimCiphertext(ciphertext, maxBytes);
    if (requestKeyId !== undefined ? parsed.keyId !== requestKeyId : !isKeyIdOf(this.#prefix, parsed.keyId)) {
      throw new KeygateError('KEY_ID_MISMATCH_ERR', { detail: { reason: 'key_id differs from ciphertext' } });
    }
    const key = parsed.wrappedDek.toString('latin1');
    const hit = this.#cache.get(key, this.#o.clock.now().getTime());
    if (hit) return openShim(parsed, hit.dataKey(parsed.alg));
    return this.#decryptMiss(parsed, key, deadline);
  }

  async #decryptMiss(parsed: ShimCiphertext, key: string, deadline?: number): Promise<Buffer> {
    for (let attempt = 0; attempt < 3; attempt++) {
      // Concurrent callers share the first one's unwrap, and so its deadline.
      const entry = await this.#unwraps.run(key, () => this.#unwrapEntry(parsed, deadline));
      // The entry can have been evicted between the unwrap and this continuation: unwrap again.
      if (!entry.destroyed) return openShim(parsed, entry.dataKey(parsed.alg));
    }
    throw new KeygateError('NOT_READY', { detail: { reason: 'DEK evicted repeatedly' } });
  }

  /**
   * Background refresh of the key_id (and of the current DEK when it is near its limits): one
   * wrap of a fresh DEK tells the root key's current version. Never throws.
   */
  async refresh(): Promise<void> {
    if (this.#key.refusal === 'NOT_READY') return;
    try {
      await this.#rotation.run('current', () => this.#rotateCurrent(false));
    } catch {
      // Recorded as the health problem by #wrap; Status keeps the last key_id.
    }
  }

  /** A real wrap and unwrap through the gateway plus a local seal and open (deep health check). */
  async roundTrip(): Promise<void> {
    // Not refused on a key state: like refresh, this probe is how a re-enabled key is noticed.
    if (this.#key.refusal === 'NOT_READY') throw this.#key.refusalError();
    const dek = this.#o.random(this.#o.dekBytes);
    try {
      const w = await this.#gateway.wrap(dek);
      const back = await this.#gateway.unwrap(w.wrappedDek);
      try {
        if (!constantTimeEqual(back, dek)) throw new KeygateError('GATEWAY_PROTOCOL_ERR');
      } finally {
        zeroize(back);
      }
      const entry = new DekEntry(dek);
      try {
        const probe = Buffer.from('ping');
        const ct = this.#seal(entry, w.wrappedDek, w.keyId, probe, 1024);
        const parsed = decodeShimCiphertext(ct, 1024);
        if (!openShim(parsed, entry.dataKey(parsed.alg)).equals(probe))
          throw new KeygateError('INTERNAL_ERR');
      } finally {
        entry.destroy();
      }
    } finally {
      zeroize(dek);
    }
  }

  /** Zeroes every DEK held; later calls fail with NOT_READY. */
  close(): void {
    this.#key.close();
    this.#dropKeys();
  }

  #seal(
    entry: DekEntry,
    wrappedDek: Buffer,
    keyId: string,
    plaintext: Uint8Array,
    maxBytes: number,
    header?: Buffer,
  ): Buffer {
    return sealShim({
      header,
      alg: this.#o.alg,
      keyId,
      wrappedDek,
      dataKey: entry.dataKey(this.#o.alg),
      plaintext,
      random: this.#o.random,
      maxBytes,
    });
  }

  async #encryptFresh(plaintext: Uint8Array, maxBytes: number, deadline?: number): Promise<Encrypted> {
    const dek = this.#o.random(this.#o.dekBytes);
    try {
      const w = await this.#gateway.wrap(dek, deadline);
      this.#key.adoptKeyId(w.keyId);
      const entry = new DekEntry(dek);
      try {
        const ciphertext = this.#seal(entry, w.wrappedDek, w.keyId, plaintext, maxBytes);
        this.#cache.put(w.wrappedDek.toString('latin1'), dek, this.#o.clock.now().getTime());
        return { ciphertext, keyId: w.keyId };
      } finally {
        entry.destroy();
      }
    } finally {
      zeroize(dek);
    }
  }

  /**
   * Wraps a fresh DEK. It becomes the current DEK when `force`, when there is none, when the current
   * one is near its limits, or when the root key's version changed; otherwise it is zeroed.
   */
  async #rotateCurrent(force: boolean, deadline?: number): Promise<void> {
    const dek = this.#o.random(this.#o.dekBytes);
    try {
      const w = await this.#gateway.wrap(dek, deadline);
      if (this.#key.isRetired(w.keyId)) {
        // A lagging gateway replica reports a superseded version: never go back to it.
        if (force) throw new KeygateError('GATEWAY_PROTOCOL_ERR', { detail: { reason: 'old key version' } });
        return;
      }
      if (this.#o.newDekPerEncrypt) {
        this.#key.adoptKeyId(w.keyId);
        return;
      }
      const now = this.#o.clock.now().getTime();
      const cur = this.#current;
      const replace =
        force ||
        cur === undefined ||
        cur.keyId !== w.keyId ||
        !cur.usable(now, this.#o.dekLimits) ||
        cur.nearLimits(now, this.#o.dekLimits);
      if (!replace) return;
      const next = new CurrentDek(
        new DekEntry(dek),
        w.wrappedDek,
        w.keyId,
        now,
        encodeShimHeader(this.#o.alg, w.keyId, w.wrappedDek),
      );
      this.#cache.put(w.wrappedDek.toString('latin1'), dek, now);
      this.#key.adoptKeyId(w.keyId);
      this.#current = next;
      cur?.entry.destroy();
    } finally {
      zeroize(dek);
    }
  }

  async #unwrapEntry(parsed: ShimCiphertext, deadline?: number): Promise<DekEntry> {
    const dek = await this.#gateway.unwrap(parsed.wrappedDek, deadline);
    try {
      const cached = this.#cache.put(
        parsed.wrappedDek.toString('latin1'),
        dek,
        this.#o.clock.now().getTime(),
      );
      if (cached) return cached;
      // Cache disabled: the entry lives only until the callers sharing this unwrap have used it.
      // They continue in microtasks once the flight settles; a macrotask runs after all of them.
      const entry = new DekEntry(dek);
      setTimeout(() => entry.destroy(), 0);
      return entry;
    } finally {
      zeroize(dek);
    }
  }

  #dropKeys(): void {
    this.#cache.clear();
    this.#current?.entry.destroy();
    this.#current = undefined;
  }

  /** Removes expired cache entries (call from a timer). */
  sweep(): void {
    this.#cache.sweep(this.#o.clock.now().getTime());
  }
}
