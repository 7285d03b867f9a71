import {
  constantTimeEqual,
  decodeShimCiphertext,
  encodeShimHeader,
  isKeygateError,
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
import { type HealthProblem, healthProblemOf } from './health.js';
import { isKeyIdOf, keyIdFor, keyIdPrefix } from './key-id.js';
import type { Clock, CoreEvents, GatewayClient } from './ports.js';
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

/** What Status answers: always from memory, never waiting on the gateway. */
export interface CoreStatus {
  readonly healthz: string;
  /** Empty only before the first successful wrap (healthz is then not "ok"). */
  readonly keyId: string;
  /**
   * Set while the gateway is unreachable but this shim still serves every call kube-apiserver
   * needs from its current DEK and cache; Status then stays "ok" (see status()).
   */
  readonly degraded?: string;
}

export interface Encrypted {
  readonly ciphertext: Buffer;
  readonly keyId: string;
}

interface Wrapped {
  readonly wrappedDek: Buffer;
  readonly keyId: string;
}

const MIN_DEK_BYTES = 16;
const MAX_DEK_BYTES = 64;

/**
 * The shim's envelope core: local encryption under DEKs that the gateway wraps, a DEK cache, the
 * current-DEK policy and the key_id state. Invariants: a ciphertext is sealed only with a DEK
 * whose wrap succeeded; plaintext is returned only after the AEAD tag verified.
 */
export class KmsCore {
  readonly #o: KmsCoreOptions;
  readonly #prefix: string;
  readonly #aad: readonly string[];
  readonly #cache: DekCache;
  readonly #unwraps = new SingleFlight<string, DekEntry>();
  readonly #rotation = new SingleFlight<'current', void>();
  readonly #retired = new Set<string>();
  #current: CurrentDek | undefined;
  #keyId: string | undefined;
  #problem: HealthProblem | undefined = { text: 'gateway not reached yet', transient: false };
  #closed = false;
  /** The last status() answer while it depends only on the fields above; cleared when they change. */
  #status: CoreStatus | undefined;
  gatewayCalls = 0;

  constructor(options: KmsCoreOptions) {
    this.#o = options;
    this.#prefix = keyIdPrefix(options.instanceId, options.crkId);
    // Binds every wrapped DEK to this use of the root key; the same on every node.
    this.#aad = ['keygate-shim', options.crkId];
    this.#cache = new DekCache({ maxEntries: options.cacheSize, ttlMs: options.cacheTtlMs });
  }

  /**
   * Cached health and key_id, for Status. The same object comes back for as long as the state it
   * reflects is unchanged (callers may cache what they build from it by identity).
   */
  status(): CoreStatus {
    const cached = this.#status;
    if (cached !== undefined) return cached;
    const s = this.#computeStatus();
    // The degraded branch depends on the clock (the current DEK's limits): never cached.
    if (!(this.#problem?.transient && this.#keyId !== undefined && !this.#closed)) {
      this.#status = s;
    }
    return s;
  }

  #computeStatus(): CoreStatus {
    const keyId = this.#keyId ?? '';
    if (this.#closed) return { healthz: 'shutting down', keyId };
    if (this.#keyId === undefined)
      return { healthz: `no key_id yet: ${this.#problem?.text ?? 'starting'}`, keyId };
    if (this.#problem === undefined) return { healthz: 'ok', keyId };
    // An unreachable gateway does not stop this shim from serving kube-apiserver while the current
    // DEK is usable: Encrypt seals with it and Decrypt of cached DEKs needs no gateway. Reporting
    // unhealthy then would make every apiserver sharing this gateway unready (out of its load
    // balancer) for an outage keygate absorbs. Refusals and key states are never masked, and
    // the deep /healthz check and the metrics still show the gateway problem.
    if (this.#problem.transient && this.#canEncryptLocally()) {
      return { healthz: 'ok', keyId, degraded: this.#problem.text };
    }
    return { healthz: this.#problem.text, keyId };
  }

  #canEncryptLocally(): boolean {
    if (this.#o.newDekPerEncrypt) return false;
    const cur = this.#current;
    return (
      cur !== undefined && cur.keyId === this.#keyId && cur.usable(this.#o.clock.now(), this.#o.dekLimits)
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

  /** Encrypts `plaintext` into a shim ciphertext of at most `maxBytes`. */
  async encrypt(plaintext: Uint8Array, maxBytes: number): Promise<Encrypted> {
    return this.encryptNow(plaintext, maxBytes);
  }

  /**
   * encrypt() for the hot path: answers synchronously (no promise, no microtask) when the current
   * DEK is usable, and throws synchronously on a bad request; otherwise returns a promise.
   */
  encryptNow(plaintext: Uint8Array, maxBytes: number): Encrypted | Promise<Encrypted> {
    this.#assertOpen();
    if (!this.#o.newDekPerEncrypt) {
      const cur = this.#current;
      if (cur?.usable(this.#o.clock.now(), this.#o.dekLimits)) {
        const ciphertext = this.#seal(cur.entry, cur.wrappedDek, cur.keyId, plaintext, maxBytes, cur.header);
        cur.uses++;
        return { ciphertext, keyId: cur.keyId };
      }
    }
    return this.#encryptSlow(plaintext, maxBytes);
  }

  async #encryptSlow(plaintext: Uint8Array, maxBytes: number): Promise<Encrypted> {
    if (this.#o.newDekPerEncrypt) return this.#encryptFresh(plaintext, maxBytes);
    for (let attempt = 0; attempt < 3; attempt++) {
      const now = this.#o.clock.now();
      const cur = this.#current;
      // Check and seal with no await in between, so `cur` cannot be replaced and zeroed meanwhile.
      if (cur?.usable(now, this.#o.dekLimits)) {
        const ciphertext = this.#seal(cur.entry, cur.wrappedDek, cur.keyId, plaintext, maxBytes, cur.header);
        cur.uses++;
        return { ciphertext, keyId: cur.keyId };
      }
      await this.#rotation.run('current', () => this.#rotateCurrent(true));
    }
    throw new KeygateError('NOT_READY', { detail: { reason: 'no usable DEK after rotation' } });
  }

  /**
   * Decrypts a shim ciphertext. `requestKeyId` (v2) must name this root key and equal the key_id
   * inside the ciphertext; v1 passes undefined and only the ciphertext's key_id is checked.
   */
  async decrypt(ciphertext: Uint8Array, requestKeyId: string | undefined, maxBytes: number): Promise<Buffer> {
    return this.decryptNow(ciphertext, requestKeyId, maxBytes);
  }

  /**
   * decrypt() for the hot path: answers synchronously (no promise, no microtask) when the DEK is
   * cached, and throws synchronously on a bad request; only a cache miss returns a promise (and
   * goes through the single-flight unwrap).
   */
  decryptNow(
    ciphertext: Uint8Array,
    requestKeyId: string | undefined,
    maxBytes: number,
  ): Buffer | Promise<Buffer> {
    this.#assertOpen();
    if (requestKeyId !== undefined && !isKeyIdOf(this.#prefix, requestKeyId)) {
      throw new KeygateError('KEY_ID_MISMATCH_ERR', { detail: { reason: 'unknown key_id' } });
    }
    const parsed = decodeShimCiphertext(ciphertext, maxBytes);
    if (requestKeyId !== undefined ? parsed.keyId !== requestKeyId : !isKeyIdOf(this.#prefix, parsed.keyId)) {
      throw new KeygateError('KEY_ID_MISMATCH_ERR', { detail: { reason: 'key_id differs from ciphertext' } });
    }
    const key = parsed.wrappedDek.toString('latin1');
    const hit = this.#cache.get(key, this.#o.clock.now());
    if (hit) return openShim(parsed, hit.dataKey(parsed.alg));
    return this.#decryptMiss(parsed, key);
  }

  async #decryptMiss(parsed: ShimCiphertext, key: string): Promise<Buffer> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const entry = await this.#unwraps.run(key, () => this.#unwrapEntry(parsed));
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
    if (this.#closed) return;
    try {
      await this.#rotation.run('current', () => this.#rotateCurrent(false));
    } catch {
      // Recorded as the health problem by #wrap; Status keeps the last key_id.
    }
  }

  /** A real wrap and unwrap through the gateway plus a local seal and open (deep health check). */
  async roundTrip(): Promise<void> {
    this.#assertOpen();
    const dek = this.#o.random(this.#o.dekBytes);
    try {
      const w = await this.#wrap(dek);
      const back = await this.#unwrap(w.wrappedDek);
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
    this.#closed = true;
    this.#status = undefined;
    this.#dropKeys();
  }

  #assertOpen(): void {
    if (this.#closed) throw new KeygateError('NOT_READY', { detail: { reason: 'closed' } });
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

  async #encryptFresh(plaintext: Uint8Array, maxBytes: number): Promise<Encrypted> {
    const dek = this.#o.random(this.#o.dekBytes);
    try {
      const w = await this.#wrap(dek);
      this.#adoptKeyId(w.keyId);
      const entry = new DekEntry(dek);
      try {
        const ciphertext = this.#seal(entry, w.wrappedDek, w.keyId, plaintext, maxBytes);
        this.#cache.put(w.wrappedDek.toString('latin1'), dek, this.#o.clock.now());
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
  async #rotateCurrent(force: boolean): Promise<void> {
    const dek = this.#o.random(this.#o.dekBytes);
    try {
      const w = await this.#wrap(dek);
      if (this.#retired.has(w.keyId)) {
        // A lagging gateway replica reports a superseded version: never go back to it.
        if (force) throw new KeygateError('GATEWAY_PROTOCOL_ERR', { detail: { reason: 'old key version' } });
        return;
      }
      if (this.#o.newDekPerEncrypt) {
        this.#adoptKeyId(w.keyId);
        return;
      }
      const now = this.#o.clock.now();
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
      this.#adoptKeyId(w.keyId);
      this.#current = next;
      cur?.entry.destroy();
    } finally {
      zeroize(dek);
    }
  }

  #adoptKeyId(keyId: string): void {
    if (keyId === this.#keyId || this.#retired.has(keyId)) return;
    const from = this.#keyId;
    if (from !== undefined) this.#retired.add(from);
    this.#keyId = keyId;
    this.#status = undefined;
    this.#o.events?.keyIdChanged?.(from, keyId);
  }

  async #unwrapEntry(parsed: ShimCiphertext): Promise<DekEntry> {
    const dek = await this.#unwrap(parsed.wrappedDek);
    try {
      const cached = this.#cache.put(parsed.wrappedDek.toString('latin1'), dek, this.#o.clock.now());
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

  async #wrap(dek: Buffer): Promise<Wrapped> {
    const r = await this.#call(() => this.#o.gateway.wrap(dek, this.#aad));
    let keyId: string;
    try {
      keyId = keyIdFor(this.#prefix, r.keyVersionId);
    } catch (cause) {
      throw this.#noteFailure(new KeygateError('GATEWAY_PROTOCOL_ERR', { cause }));
    }
    return { wrappedDek: r.wrappedDek, keyId };
  }

  async #unwrap(wrappedDek: Buffer): Promise<Buffer> {
    const r = await this.#call(() => this.#o.gateway.unwrap(wrappedDek, this.#aad));
    if (r.dek.length < MIN_DEK_BYTES || r.dek.length > MAX_DEK_BYTES) {
      zeroize(r.dek);
      throw this.#noteFailure(new KeygateError('GATEWAY_PROTOCOL_ERR', { detail: { reason: 'DEK size' } }));
    }
    return r.dek;
  }

  async #call<T>(fn: () => Promise<T>): Promise<T> {
    this.gatewayCalls++;
    try {
      const r = await fn();
      this.#setProblem(undefined);
      return r;
    } catch (err) {
      throw this.#noteFailure(err);
    }
  }

  #noteFailure(err: unknown): unknown {
    const problem = healthProblemOf(err);
    if (problem !== undefined) this.#setProblem(problem);
    // Crypto-shredding: once the root key is destroyed, no DEK under it stays usable here either.
    if (isKeygateError(err) && err.code === 'KEY_DELETED_ERR') this.#dropKeys();
    return err;
  }

  #setProblem(problem: HealthProblem | undefined): void {
    // The text decides the kind (healthProblemOf), so equal texts are equal problems.
    if (problem?.text === this.#problem?.text) return;
    this.#problem = problem;
    this.#status = undefined;
    const st = this.status();
    this.#o.events?.healthChanged?.(st.degraded ? `ok, degraded: ${st.degraded}` : st.healthz);
  }

  #dropKeys(): void {
    this.#cache.clear();
    this.#current?.entry.destroy();
    this.#current = undefined;
  }

  /** Removes expired cache entries (call from a timer). */
  sweep(): void {
    this.#cache.sweep(this.#o.clock.now());
  }
}
