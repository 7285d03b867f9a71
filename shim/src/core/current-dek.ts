import type { DekEntry } from './dek-entry.js';

/** Limits of the reused encryption DEK (NEW_DEK=false). */
export interface DekLimits {
  readonly maxUses: number;
  readonly maxAgeMs: number;
}

/** The DEK that Encrypt uses while NEW_DEK=false, with its wrapped form and use count. */
export class CurrentDek {
  uses = 0;

  constructor(
    readonly entry: DekEntry,
    readonly wrappedDek: Buffer,
    readonly keyId: string,
    readonly createdAt: number,
    /** The ciphertext header (the AAD) of this DEK, built once; undefined lets sealShim build it. */
    readonly header?: Buffer,
  ) {}

  /** True while the DEK may still encrypt. */
  usable(now: number, limits: DekLimits): boolean {
    return !this.entry.destroyed && this.uses < limits.maxUses && now - this.createdAt < limits.maxAgeMs;
  }

  /** True once 90 % of a limit is spent: the background refresh replaces it before Encrypt must wait. */
  nearLimits(now: number, limits: DekLimits): boolean {
    return this.uses >= limits.maxUses * 0.9 || now - this.createdAt >= limits.maxAgeMs * 0.9;
  }
}
