import { z } from 'zod';
import { HSM_PROFILE_NAMES, HSM_PROFILES, type HsmProfile } from './adapters/pkcs11/profiles.js';
import { duration } from './config-duration.js';

/** `hsm.pin`: the HSM user PIN as a value, a file or an environment variable (resolveSecret reads it). */
const secretRef = z.strictObject({
  value: z.string().min(1).optional(),
  file: z.string().min(1).optional(),
  env: z.string().min(1).optional(),
});

const pkcs11Hsm = z.strictObject({
  backend: z.literal('pkcs11'),
  module: z.string().min(1),
  /**
   * C_Initialize library parameters (pReserved), for modules configured that way: NSS softoken's
   * `configdir='sql:/path' certPrefix='' keyPrefix='' secmod='' flags=...`. Most modules take none.
   */
  libraryParameters: z.string().min(1).max(4096).optional(),
  tokenLabel: z.string().min(1).max(32),
  pin: secretRef,
  /** Vendor defaults (adapters/pkcs11/profiles.ts, docs/hsm.md): IV mode, key template, sessions. */
  profile: z.enum(HSM_PROFILE_NAMES).default('generic'),
  /** Default: the profile's (4 for generic and softhsm2, 8 for network HSMs). */
  sessions: z.number().int().min(1).max(64).optional(),
  /**
   * 0 (default): crypto calls on the libuv pool (`*Async`), for network HSMs. N: every
   * request-path call on N worker threads holding one session each, for tokens whose calls are
   * CPU work (SoftHSM2, PCIe cards). At most `sessions`.
   */
  workerThreads: z.number().int().min(0).max(16).default(0),
  /**
   * Where GCM IVs come from (default: the profile's): `host` (the host's CSPRNG), `token-random`
   * (C_GenerateRandom on the token, passed in by the host) or `token-appended` (the module
   * generates it and appends it to the ciphertext: Luna in FIPS mode, AWS CloudHSM).
   */
  gcmIv: z.enum(['host', 'token-random', 'token-appended']).optional(),
  /** With token-appended: the IV length the module appends (16 on Luna FIPS, 12 on CloudHSM). */
  gcmIvBytes: z.union([z.literal(12), z.literal(16)]).optional(),
  /** Deprecated: `host` is gcmIv host, `hsm` is gcmIv token-random (not IV generation in the module). */
  ivSource: z.enum(['host', 'hsm']).optional(),
  /**
   * A PKCS#11 call still running after this long is given up: the request answers 503
   * HSM_UNAVAILABLE and the session is abandoned and replaced (a hung network HSM). 0: never.
   */
  operationTimeout: z.union([z.literal(0), duration(100, 600_000)]).default(10_000),
  /**
   * Calls given up as hung (operationTimeout) that have not returned, after which no more are
   * sent: each holds a thread while the module keeps it. Default: `sessions`.
   */
  maxHungCalls: z.number().int().min(1).max(256).optional(),
  /** Development and benchmarks only: add this fixed delay to every HSM call (a network HSM). */
  simulatedLatencyMs: z.number().min(0).max(1000).optional(),
});

const softwareHsm = z.strictObject({
  backend: z.literal('software'),
  keyFile: z.string().min(1),
  masterKeyFile: z.string().min(1),
  /** Development and benchmarks only: add this fixed delay to every HSM call (a network HSM). */
  simulatedLatencyMs: z.number().min(0).max(1000).optional(),
});

/**
 * The PKCS#11 settings with the profile's defaults filled in: `sessions`, the GCM IV setting
 * (`gcmIv: {mode, bytes}`) and whether key generation restricts mechanisms.
 */
function withProfile(h: z.output<typeof pkcs11Hsm>, ctx: z.RefinementCtx) {
  const profile: HsmProfile = HSM_PROFILES[h.profile];
  const { ivSource, gcmIv, gcmIvBytes, sessions, ...rest } = h;
  if (ivSource !== undefined && gcmIv !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['ivSource'],
      message: 'not together with gcmIv (ivSource is its old name)',
    });
  }
  const mode =
    gcmIv ?? (ivSource === 'hsm' ? 'token-random' : ivSource === 'host' ? 'host' : profile.gcmIv.mode);
  if (gcmIvBytes !== undefined && gcmIvBytes !== 12 && mode !== 'token-appended') {
    ctx.addIssue({
      code: 'custom',
      path: ['gcmIvBytes'],
      message: '12 unless gcmIv is token-appended (only a module that appends its IV sets another length)',
    });
  }
  const bytes = mode === 'token-appended' ? (gcmIvBytes ?? profile.gcmIv.bytes) : 12;
  return {
    ...rest,
    sessions: sessions ?? profile.sessions,
    gcmIv: { mode, bytes } as { readonly mode: typeof mode; readonly bytes: number },
    restrictMechanisms: profile.restrictMechanisms,
    requireLocal: profile.requireLocal,
    /** The config still says `ivSource` (a warning at start names its replacement). */
    deprecatedIvSource: ivSource,
  };
}

/** `hsm:` in the gateway config (docs/gateway.md, docs/hsm.md): PKCS#11 with its profile's defaults, or software. */
export const hsmSchema = z
  .discriminatedUnion('backend', [pkcs11Hsm, softwareHsm])
  .transform((h, ctx) => (h.backend === 'pkcs11' ? withProfile(h, ctx) : h));
