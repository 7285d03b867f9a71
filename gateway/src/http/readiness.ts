import type { HsmStatus } from '../core/keys/hsm.js';

/** What /readyz reports. */
export interface Readiness {
  readonly hsm: HsmStatus;
  readonly store: { readonly ready: boolean; readonly reasons: readonly string[] };
}
