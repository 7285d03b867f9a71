import type { GcmIvSetting } from './gcm-mechanism.js';

/**
 * HSM vendor profiles (`hsm.profile`, docs/hsm.md): the defaults that differ between the tokens
 * platform teams run. Every field can still be set on its own in the config.
 */
export const HSM_PROFILE_NAMES = ['generic', 'softhsm2', 'nss', 'luna', 'luna-fips', 'cloudhsm'] as const;
export type HsmProfileName = (typeof HSM_PROFILE_NAMES)[number];

export interface HsmProfile {
  /** Where GCM IVs come from (gcm-mechanism.ts). */
  readonly gcmIv: GcmIvSetting;
  /**
   * Key generation also sets CKA_ALLOWED_MECHANISMS (CKM_AES_GCM only), CKA_MODIFIABLE and
   * CKA_COPYABLE false: PKCS#11 2.40 attributes not every module accepts (`generic` leaves them
   * out; `hsm check` reports what the token does).
   */
  readonly restrictMechanisms: boolean;
  /**
   * Root-key objects must say CKA_LOCAL true (generated on the token) to be used. NSS softoken
   * says false for keys it generated itself (docs/hsm.md, Differences found).
   */
  readonly requireLocal: boolean;
  /** Sessions to open when `hsm.sessions` is not set. */
  readonly sessions: number;
  /** What operators should know, printed by `hsm check`. */
  readonly notes: string;
}

export const HSM_PROFILES: Readonly<Record<HsmProfileName, HsmProfile>> = Object.freeze({
  generic: {
    gcmIv: { mode: 'host', bytes: 12 },
    restrictMechanisms: false,
    requireLocal: true,
    sessions: 4,
    notes: 'any PKCS#11 v2.40 module: host IVs, the portable key template',
  },
  softhsm2: {
    gcmIv: { mode: 'host', bytes: 12 },
    restrictMechanisms: true,
    requireLocal: true,
    sessions: 4,
    notes: 'SoftHSM2 2.6 (development and CI): CPU-bound calls, use hsm.workerThreads',
  },
  nss: {
    gcmIv: { mode: 'host', bytes: 12 },
    // Accepted in the template but not kept (CKR_ATTRIBUTE_TYPE_INVALID when read back): not enforced.
    restrictMechanisms: false,
    requireLocal: false,
    sessions: 4,
    notes:
      'NSS softoken 3.87 (CI): needs hsm.libraryParameters; marks the keys it generates CKA_LOCAL false, so that check is off',
  },
  luna: {
    gcmIv: { mode: 'host', bytes: 12 },
    restrictMechanisms: true,
    requireLocal: true,
    sessions: 8,
    notes: 'Thales Luna 7 outside FIPS mode (HSM policy 12 on): the caller supplies the 12-byte GCM IV',
  },
  'luna-fips': {
    gcmIv: { mode: 'token-appended', bytes: 16 },
    restrictMechanisms: true,
    requireLocal: true,
    sessions: 8,
    notes: 'Thales Luna 7 in FIPS mode: the HSM generates a 16-byte GCM IV and appends it to the ciphertext',
  },
  cloudhsm: {
    gcmIv: { mode: 'token-appended', bytes: 12 },
    restrictMechanisms: false,
    requireLocal: true,
    sessions: 8,
    notes:
      'AWS CloudHSM: the HSM always generates the 12-byte GCM IV (the caller passes a zeroed buffer) and appends it',
  },
});
