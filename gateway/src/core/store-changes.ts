/**
 * What changed in the shared store, as every replica hears it (docs/ha.md "Propagation"). A
 * replica drops what it cached about the subject: a key record, or an identity with its API keys
 * and the tokens issued to them. `all` means changes may have been missed (a reconnect, a gap):
 * drop everything.
 */
export type StoreChange =
  | { readonly kind: 'key'; readonly instance: string; readonly id: string }
  | { readonly kind: 'identity'; readonly name: string }
  | { readonly kind: 'all' };

/** Where a replica hears about changes made by any replica (itself included). */
export interface ChangeFeed {
  /** Calls `fn` for every change; returns the unsubscribe function. */
  onChange(fn: (change: StoreChange) => void): () => void;
}
