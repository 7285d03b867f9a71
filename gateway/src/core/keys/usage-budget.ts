import { KeygateError } from '@keygate/shared/errors';
import type { EncryptionBudget, KeyDeps } from './key-deps.js';
import { rotateKeyFrom } from './key-lifecycle.js';
import { currentVersion, type KeyRecord, type KeyVersionRecord } from './key-store.js';

/**
 * Usage limits per root-key version. AES-GCM with random 96-bit IVs allows at most 2^32
 * encryptions under one key (NIST SP 800-38D, 8.3); every wrap and rewrap is one.
 */
export interface UsageLimits {
  /** Past `rotateAt`: `rotate` adds a new version and wraps under it; `refuse` answers KEY_USAGE_LIMIT_ERR. */
  readonly policy: 'rotate' | 'refuse';
  /** One warning per version and replica once this many are reserved. */
  readonly warnAt: number;
  /** At most this many encryptions are made under one version (by all replicas together). */
  readonly rotateAt: number;
  /** Encryptions a replica reserves in the store at once (one store write per block). */
  readonly blockSize: number;
  /** Rotate a version this old on its next wrap; undefined: never by age. */
  readonly rotateAfterMs?: number | undefined;
}

/**
 * What the budget reports (the runtime logs it, and audits a rotation; never key material, only
 * names and counts). A listener's promise is awaited for `rotated` only: the request that caused
 * the rotation is answered once it settles, and fails with its error (the rotation stays).
 */
export type UsageListener = (event: UsageEvent) => void | Promise<void>;

/** One event of the budget. */
export type UsageEvent =
  | {
      readonly type: 'warn';
      readonly instance: string;
      readonly keyId: string;
      readonly versionId: string;
      readonly reserved: number;
      readonly warnAt: number;
      readonly rotateAt: number;
    }
  | {
      readonly type: 'rotated';
      readonly instance: string;
      readonly keyId: string;
      readonly fromVersionId: string;
      readonly toVersionId: string;
      readonly reason: 'count' | 'age';
      readonly reserved: number;
      /** How long the rotation took (HSM key generation and store update). */
      readonly latencyMs: number;
    }
  | {
      readonly type: 'refused';
      readonly instance: string;
      readonly keyId: string;
      readonly versionId: string;
      readonly reserved: number;
    };

/** One version this replica wraps under: the metric's sample. */
export interface UsageSample {
  readonly instance: string;
  readonly keyId: string;
  readonly versionId: string;
  /** The store's reserved total as this replica last saw it (every replica's blocks). */
  readonly reserved: number;
  /** Encryptions this replica made under the version since it started. */
  readonly used: number;
}

interface Lease {
  readonly instance: string;
  readonly keyId: string;
  readonly versionId: string;
  readonly createdMs: number;
  /** The next encryption number to spend, and the end of the block (exclusive). */
  next: number;
  end: number;
  reserved: number;
  used: number;
  /** No more encryptions under this version: `rotateAt` is reached. */
  exhausted: boolean;
  warned: boolean;
  refill: Promise<void> | undefined;
}

/** Keys whose lease one replica keeps at most (the metric's series too); the oldest is dropped. */
const MAX_LEASES = 10_000;
/** Rotations one take() follows at most (another replica may rotate again meanwhile). */
const MAX_ROTATIONS = 3;

/**
 * Counts encryptions per key version: each replica reserves blocks of `blockSize` in the store
 * (KeyStore.reserveEncryptions, one write per block) and spends them in memory, so the hot path
 * makes no store write. Blocks of different replicas never overlap, and a block is never spent
 * past `rotateAt`, so no version makes more than `rotateAt` encryptions; the store's total is an
 * upper bound (a block a replica did not finish, by a restart or a rotation, stays counted).
 */
export class UsageBudget implements EncryptionBudget {
  readonly #limits: UsageLimits;
  readonly #onEvent: UsageListener;
  /** Leases by version (the newest version of each key this replica saw). */
  readonly #leases = new Map<string, Lease>();
  /** Versions a newer one replaced here: a request with such a record re-reads the key. */
  readonly #retired = new Set<string>();
  readonly #rotations = new Map<string, Promise<KeyRecord>>();

  constructor(limits: UsageLimits, onEvent: UsageListener = () => undefined) {
    if (!(limits.blockSize >= 1 && limits.warnAt >= 1 && limits.rotateAt >= 1)) {
      throw new RangeError('usage limits: blockSize, warnAt and rotateAt are at least 1');
    }
    this.#limits = limits;
    this.#onEvent = onEvent;
  }

  get limits(): UsageLimits {
    return this.#limits;
  }

  async take(deps: KeyDeps, key: KeyRecord): Promise<KeyVersionRecord> {
    let k = key;
    let rotations = 0;
    for (;;) {
      const version = currentVersion(k);
      const lease = this.#lease(k, version);
      if (lease === undefined) {
        // A stale record: a newer version exists (rotateKeyFrom only re-reads the key then).
        if (rotations++ >= MAX_ROTATIONS)
          throw new KeygateError('KEY_USAGE_LIMIT_ERR', { detail: { keyId: k.id } });
        k = (await rotateKeyFrom(deps, k.instance, k.id, version.id)).record;
        continue;
      }
      const age = this.#limits.rotateAfterMs;
      if (
        age !== undefined &&
        deps.clock.now().getTime() - lease.createdMs >= age &&
        rotations < MAX_ROTATIONS
      ) {
        rotations++;
        k = await this.#rotate(deps, k, lease, 'age');
        continue;
      }
      if (lease.next < lease.end) {
        lease.next++;
        lease.used++;
        return version;
      }
      if (!lease.exhausted) {
        lease.refill ??= this.#refill(deps, lease).finally(() => {
          lease.refill = undefined;
        });
        await lease.refill;
        continue;
      }
      if (this.#limits.policy === 'refuse' || rotations >= MAX_ROTATIONS) {
        throw new KeygateError('KEY_USAGE_LIMIT_ERR', {
          detail: { keyId: k.id, versionId: version.id, reserved: lease.reserved },
        });
      }
      rotations++;
      k = await this.#rotate(deps, k, lease, 'count');
    }
  }

  /** A sample per key this replica wraps under, for the metric. */
  samples(): readonly UsageSample[] {
    return [...this.#leases.values()].map((l) => ({
      instance: l.instance,
      keyId: l.keyId,
      versionId: l.versionId,
      reserved: l.reserved,
      used: l.used,
    }));
  }

  /**
   * The lease of `version`, or undefined when this replica already saw a newer version of the key
   * (the caller's record is stale). Leases are per version, so requests holding records of two
   * versions never replace each other's blocks; a newer version retires the older ones' leases
   * (what is left of their blocks stays counted).
   */
  #lease(key: KeyRecord, version: KeyVersionRecord): Lease | undefined {
    const slot = versionSlot(key.instance, key.id, version.id);
    const cur = this.#leases.get(slot);
    if (cur !== undefined) return cur;
    if (this.#retired.has(slot)) return undefined;
    for (const older of key.versions) {
      if (older.id === version.id) break;
      const o = versionSlot(key.instance, key.id, older.id);
      if (this.#leases.delete(o)) this.#retire(o);
    }
    const lease: Lease = {
      instance: key.instance,
      keyId: key.id,
      versionId: version.id,
      createdMs: Date.parse(version.creationDate),
      next: 0,
      end: 0,
      reserved: 0,
      used: 0,
      exhausted: false,
      warned: false,
      refill: undefined,
    };
    if (this.#leases.size >= MAX_LEASES) {
      const oldest = this.#leases.keys().next().value;
      if (oldest !== undefined) this.#leases.delete(oldest);
    }
    this.#leases.set(slot, lease);
    return lease;
  }

  #notify(event: UsageEvent): void {
    settle(this.#onEvent(event));
  }

  #retire(slot: string): void {
    if (this.#retired.size >= MAX_LEASES) {
      const oldest = this.#retired.values().next().value;
      if (oldest !== undefined) this.#retired.delete(oldest);
    }
    this.#retired.add(slot);
  }

  async #refill(deps: KeyDeps, lease: Lease): Promise<void> {
    const { blockSize, rotateAt, warnAt } = this.#limits;
    if (lease.reserved >= rotateAt) {
      // Known spent: no store write (a refused request costs nothing).
      lease.exhausted = true;
    } else {
      const total = await deps.store.reserveEncryptions(
        lease.instance,
        lease.keyId,
        lease.versionId,
        blockSize,
      );
      lease.reserved = Math.max(lease.reserved, total);
      // Never spend past rotateAt: the part of the block beyond it is counted but unused.
      const start = total - blockSize;
      const end = Math.min(total, rotateAt);
      if (start < end) {
        lease.next = start;
        lease.end = end;
      } else {
        lease.exhausted = true;
      }
    }
    const total = lease.reserved;
    if (!lease.warned && total >= warnAt) {
      lease.warned = true;
      this.#notify({
        type: 'warn',
        instance: lease.instance,
        keyId: lease.keyId,
        versionId: lease.versionId,
        reserved: total,
        warnAt,
        rotateAt,
      });
    }
    if (lease.exhausted && this.#limits.policy === 'refuse') {
      this.#notify({
        type: 'refused',
        instance: lease.instance,
        keyId: lease.keyId,
        versionId: lease.versionId,
        reserved: total,
      });
    }
  }

  /** One rotation per version at a time; a version another replica already replaced is not rotated again. */
  async #rotate(deps: KeyDeps, key: KeyRecord, lease: Lease, reason: 'count' | 'age'): Promise<KeyRecord> {
    const slot = versionSlot(key.instance, key.id, lease.versionId);
    let running = this.#rotations.get(slot);
    if (running === undefined) {
      const started = deps.clock.now().getTime();
      running = rotateKeyFrom(deps, key.instance, key.id, lease.versionId)
        .then(async ({ record, rotated }) => {
          if (rotated) {
            // Awaited: the audit record of the rotation is durable before a wrap under the new version is answered.
            await this.#onEvent({
              type: 'rotated',
              instance: key.instance,
              keyId: key.id,
              fromVersionId: lease.versionId,
              toVersionId: currentVersion(record).id,
              reason,
              reserved: lease.reserved,
              latencyMs: deps.clock.now().getTime() - started,
            });
          }
          return record;
        })
        .finally(() => {
          this.#rotations.delete(slot);
        });
      this.#rotations.set(slot, running);
    }
    return running;
  }
}

/** A listener's failure on a warn or refused event is its own business (it logs); never an unhandled rejection. */
function settle(result: void | Promise<void>): void {
  if (result instanceof Promise) result.catch(() => undefined);
}

function versionSlot(instance: string, keyId: string, versionId: string): string {
  return `${instance}\u0000${keyId}\u0000${versionId}`;
}
