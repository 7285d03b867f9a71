import type { Random } from '@keygate/shared/crypto';
import pkcs11js from 'pkcs11js';
import { ckrName } from './ckr-map.js';
import {
  type GcmIvSetting,
  GcmOutputError,
  gcm,
  IV_BYTES,
  splitAppended,
  TAG_BYTES,
} from './gcm-mechanism.js';
import { findSecretKeys, keyTemplate } from './key-object.js';
import type { Pkcs11Hsm } from './pkcs11-hsm.js';
import { HSM_PROFILE_NAMES, HSM_PROFILES, type HsmProfile, type HsmProfileName } from './profiles.js';

type Handle = Buffer;

/** One mechanism as the token describes it (C_GetMechanismInfo). */
export interface MechanismReport {
  readonly name: string;
  readonly supported: boolean;
  readonly minKeySize?: number;
  readonly maxKeySize?: number;
  readonly flags?: readonly string[];
}

/** What an IV convention did when tried on a scratch key. */
export interface IvTrial {
  readonly setting: GcmIvSetting;
  readonly works: boolean;
  readonly detail: string;
}

/** A keygate-labelled object whose key version the store does not list as live. */
export interface StrayObject {
  readonly label: string;
  /** `unknown`: no such key or version in the store (a crash between key generation and the store); `destroyed`: its key was destroyed (a destroy that did not finish deleting). */
  readonly why: 'unknown' | 'destroyed';
}

export interface TokenProbeReport {
  readonly token: {
    readonly label: string;
    readonly manufacturer: string;
    readonly model: string;
    readonly firmware: string;
  };
  readonly mechanisms: readonly MechanismReport[];
  /** Key generation with the profile's template (the restrictive one where the profile says so). */
  readonly template: { readonly restricted: boolean; readonly works: boolean; readonly detail: string };
  readonly ivTrials: readonly IvTrial[];
  readonly configured: GcmIvSetting;
  readonly profile: HsmProfileName;
  /**
   * Whether C_FindObjects finds the scratch key just generated. A token that finds nothing (an HA
   * failover, a replica that has not got the object yet) cannot serve keygate, which finds root
   * keys by search; and the stray list would be empty whatever is on the token.
   */
  readonly objectSearch: { readonly works: boolean; readonly detail: string };
  /** Empty when `objectSearch` does not work (not checked). */
  readonly strays: readonly StrayObject[];
  /** The one-line verdict, and whether the configuration fits the token. */
  readonly verdict: { readonly ok: boolean; readonly text: string };
}

const MECHANISMS: readonly [string, number][] = [
  ['CKM_AES_GCM', pkcs11js.CKM_AES_GCM],
  ['CKM_AES_KEY_GEN', pkcs11js.CKM_AES_KEY_GEN],
];

const FLAG_NAMES: readonly [string, number][] = [
  ['HW', pkcs11js.CKF_HW],
  ['ENCRYPT', pkcs11js.CKF_ENCRYPT],
  ['DECRYPT', pkcs11js.CKF_DECRYPT],
  ['GENERATE', pkcs11js.CKF_GENERATE],
  ['WRAP', pkcs11js.CKF_WRAP],
  ['UNWRAP', pkcs11js.CKF_UNWRAP],
];

/**
 * `keygate-gateway hsm check`'s probe of a PKCS#11 token: what it is, what it says about AES-GCM,
 * whether it accepts keygate's key template, which GCM IV conventions actually work (tried on a
 * scratch key that is deleted afterwards), whether the configured one is among them, and which
 * keygate-labelled objects the store does not know (left by a crash between key generation and
 * the store update, or by an unfinished destroy). `isLive(instance, crkId, versionId)` asks the store.
 */
export async function probeToken(
  hsm: Pkcs11Hsm,
  opts: {
    readonly profileName: HsmProfileName;
    readonly profile: HsmProfile;
    readonly configured: GcmIvSetting;
    readonly restrictMechanisms: boolean;
    readonly random: Random;
    readonly isLive: (
      instance: string,
      crkId: string,
      versionId: string,
    ) => Promise<'live' | 'destroyed' | 'unknown'>;
  },
): Promise<TokenProbeReport> {
  const lib = hsm.token.lib;
  const slot = hsm.token.slot;
  const info = lib.C_GetTokenInfo(slot);
  const token = {
    label: info.label.trim(),
    manufacturer: info.manufacturerID.trim(),
    model: info.model.trim(),
    firmware: `${info.firmwareVersion.major}.${info.firmwareVersion.minor}`,
  };
  const mechanisms = MECHANISMS.map(([name, type]): MechanismReport => {
    try {
      const m = lib.C_GetMechanismInfo(slot, type);
      return {
        name,
        supported: true,
        minKeySize: m.minKeySize,
        maxKeySize: m.maxKeySize,
        flags: FLAG_NAMES.filter(([, f]) => (m.flags & f) !== 0).map(([n]) => n),
      };
    } catch {
      return { name, supported: false };
    }
  });
  const scratch = `keygate:${CHECK_INSTANCE}:probe:${opts.random(6).toString('hex')}`;
  const { template, ivTrials, objectSearch, strays } = await hsm.pool.use(
    async (s) => {
      let key: Handle | undefined;
      let templateResult: TokenProbeReport['template'];
      try {
        key = lib.C_GenerateKey(
          s,
          { mechanism: pkcs11js.CKM_AES_KEY_GEN },
          keyTemplate(scratch, opts.restrictMechanisms),
        );
        templateResult = {
          restricted: opts.restrictMechanisms,
          works: true,
          detail: "key generated with keygate's template",
        };
      } catch (err) {
        templateResult = {
          restricted: opts.restrictMechanisms,
          works: false,
          detail: `C_GenerateKey refused the template (${ckrName(err) ?? 'error'})${opts.restrictMechanisms ? ': the token may not accept CKA_ALLOWED_MECHANISMS/CKA_COPYABLE/CKA_MODIFIABLE; try hsm.profile generic' : ''}`,
        };
      }
      const trials: IvTrial[] = [];
      let search: TokenProbeReport['objectSearch'] | undefined;
      try {
        if (key !== undefined) {
          search = trySearch(lib, s, scratch);
          trials.push(tryHostIv(lib, s, key, opts.random));
          for (const bytes of [12, 16]) trials.push(tryAppended(lib, s, key, bytes));
        }
      } finally {
        if (key !== undefined) lib.C_DestroyObject(s, key);
      }
      // Without a scratch key the search cannot be checked; look for strays anyway.
      search ??= { works: true, detail: 'not checked (no scratch key)' };
      return {
        template: templateResult,
        ivTrials: trials,
        objectSearch: search,
        strays: search.works ? await findStrays(lib, s, opts.isLive) : [],
      };
    },
    () => undefined,
  );
  const fits = ivTrials.find(
    (t) => t.setting.mode === opts.configured.mode && t.setting.bytes === opts.configured.bytes,
  );
  const configuredWorks =
    opts.configured.mode === 'token-random'
      ? ivTrials.some((t) => t.setting.mode === 'host' && t.works)
      : fits?.works === true;
  const working = ivTrials.filter((t) => t.works).map((t) => t.setting);
  const ok = template.works && configuredWorks && objectSearch.works;
  const configuredText = `gcmIv ${describeIv(opts.configured)} (profile ${opts.profileName})`;
  const strayNote = strays.length > 0 ? ` (${strays.length} stray key object(s): see above)` : '';
  const text = !template.works
    ? `MISMATCH: ${template.detail}`
    : !configuredWorks
      ? `MISMATCH: ${configuredText} does not work on this token${fits && !fits.works ? `: ${fits.detail}` : ''}; ${
          working.length === 0
            ? 'no IV convention keygate knows works (is CKM_AES_GCM usable for token keys here?)'
            : `what works: ${working.map((w) => `${describeIv(w)}: ${remedy(w, opts.restrictMechanisms)}`).join('; ')}`
        }`
      : !objectSearch.works
        ? `INCOMPLETE: ${configuredText} works, but object search does not (${objectSearch.detail}: an HA failover, or a member without the object?): the gateway cannot find its root keys now and stray objects were not checked; run hsm check again when the token answers searches`
        : `OK: profile ${opts.profileName}, gcmIv ${describeIv(opts.configured)} works on this token${strayNote}`;
  return {
    token,
    mechanisms,
    template,
    ivTrials,
    configured: opts.configured,
    profile: opts.profileName,
    objectSearch,
    strays,
    verdict: { ok, text },
  };
}

export function describeIv(s: GcmIvSetting): string {
  return s.mode === 'token-appended' ? `token-appended (${s.bytes}-byte IV)` : s.mode;
}

/**
 * What to configure for an IV convention that works: the profiles that use it (keeping the
 * configured key template's strictness when one fits), else the keys themselves.
 */
function remedy(setting: GcmIvSetting, restricted: boolean): string {
  const same = HSM_PROFILE_NAMES.filter((n) => {
    const p = HSM_PROFILES[n];
    return n !== 'nss' && p.gcmIv.mode === setting.mode && p.gcmIv.bytes === setting.bytes;
  });
  const keepTemplate = same.filter((n) => HSM_PROFILES[n].restrictMechanisms === restricted);
  const names = keepTemplate.length > 0 ? keepTemplate : same;
  const keys =
    setting.mode === 'token-appended'
      ? `hsm.gcmIv: token-appended with hsm.gcmIvBytes: ${setting.bytes}`
      : `hsm.gcmIv: ${setting.mode}`;
  return names.length > 0 ? `set hsm.profile: ${names.join(' or ')} (or ${keys})` : `set ${keys}`;
}

/** Searches for the scratch key by class and label, as the gateway finds root keys. */
function trySearch(lib: pkcs11js.PKCS11, s: Handle, label: string): TokenProbeReport['objectSearch'] {
  try {
    const found = findSecretKeys(lib, s, [{ type: pkcs11js.CKA_LABEL, value: label }], 2);
    return found.length === 1
      ? { works: true, detail: 'found the scratch key by its label' }
      : {
          works: false,
          detail: `C_FindObjects found ${found.length === 0 ? 'nothing' : `${found.length} objects`} for the scratch key just generated`,
        };
  } catch (err) {
    return { works: false, detail: `C_FindObjects failed (${ckrName(err) ?? 'error'})` };
  }
}

/** The instance part of `hsm check`'s scratch key labels (not a valid instance id, so never a customer's). */
export const CHECK_INSTANCE = '_keygate-check';

const PROBE_AAD = Buffer.from('keygate hsm check');
const PROBE_DATA = () => Buffer.alloc(32, 0x5a);

/** The host supplies a random 12-byte IV and gets ciphertext || tag back. */
function tryHostIv(lib: pkcs11js.PKCS11, s: Handle, key: Handle, random: Random): IvTrial {
  const setting = { mode: 'host', bytes: IV_BYTES } as const;
  const iv = random(IV_BYTES);
  try {
    lib.C_EncryptInit(s, gcm(iv, PROBE_AAD), key);
    const out = lib.C_Encrypt(s, PROBE_DATA(), Buffer.alloc(32 + TAG_BYTES + 16));
    if (out.length !== 32 + TAG_BYTES) {
      return {
        setting,
        works: false,
        detail: `returned ${out.length} bytes for 32 (the token adds its own IV?)`,
      };
    }
    lib.C_DecryptInit(s, gcm(iv, PROBE_AAD), key);
    const back = lib.C_Decrypt(s, out, Buffer.alloc(out.length));
    return back.equals(PROBE_DATA())
      ? { setting, works: true, detail: "the token used the caller's IV" }
      : { setting, works: false, detail: 'decrypt gave other bytes' };
  } catch (err) {
    return { setting, works: false, detail: `refused (${ckrName(err) ?? 'error'})` };
  }
}

/** The host passes a zeroed IV of `bytes`; the module must append the IV it generated. */
function tryAppended(lib: pkcs11js.PKCS11, s: Handle, key: Handle, bytes: number): IvTrial {
  const setting = { mode: 'token-appended', bytes } as const;
  try {
    lib.C_EncryptInit(s, gcm(Buffer.alloc(bytes), PROBE_AAD), key);
    const out = lib.C_Encrypt(s, PROBE_DATA(), Buffer.alloc(32 + TAG_BYTES + bytes));
    const sealed = splitAppended(out, 32, bytes);
    if (sealed.iv.every((b) => b === 0)) {
      return {
        setting,
        works: false,
        detail: 'the IV came back all zero (the module used the zeroed buffer)',
      };
    }
    lib.C_DecryptInit(s, gcm(sealed.iv, PROBE_AAD), key);
    const back = lib.C_Decrypt(
      s,
      Buffer.concat([sealed.ciphertext, sealed.tag]),
      Buffer.alloc(32 + TAG_BYTES),
    );
    return back.equals(PROBE_DATA())
      ? { setting, works: true, detail: `the module generated a ${bytes}-byte IV and appended it` }
      : { setting, works: false, detail: 'decrypt with the appended IV gave other bytes' };
  } catch (err) {
    const why = err instanceof GcmOutputError ? 'no IV appended' : `refused (${ckrName(err) ?? 'error'})`;
    return { setting, works: false, detail: why };
  }
}

/** keygate-labelled secret keys whose version the store does not list as live. */
async function findStrays(
  lib: pkcs11js.PKCS11,
  s: Handle,
  isLive: (instance: string, crkId: string, versionId: string) => Promise<'live' | 'destroyed' | 'unknown'>,
): Promise<StrayObject[]> {
  const handles = findSecretKeys(lib, s, [], Number.POSITIVE_INFINITY);
  const strays: StrayObject[] = [];
  for (const h of handles) {
    const [attr] = lib.C_GetAttributeValue(s, h, [{ type: pkcs11js.CKA_LABEL }]);
    const label = Buffer.isBuffer(attr?.value) ? attr.value.toString('utf8') : String(attr?.value ?? '');
    const parts = label.split(':');
    if (parts[0] !== 'keygate' || parts.length !== 4) continue;
    const state = await isLive(parts[1] as string, parts[2] as string, parts[3] as string);
    if (state !== 'live') strays.push({ label, why: state });
  }
  return strays;
}

/** The report as `hsm check` prints it: a few readable lines, the verdict last. */
export function formatProbe(r: TokenProbeReport): string[] {
  const lines = [
    `token: ${r.token.label} (${r.token.manufacturer} ${r.token.model}, firmware ${r.token.firmware})`,
    ...r.mechanisms.map((m) =>
      m.supported
        ? `mechanism ${m.name}: key sizes ${m.minKeySize}..${m.maxKeySize}, flags ${(m.flags ?? []).join(' ') || '-'}`
        : `mechanism ${m.name}: NOT SUPPORTED`,
    ),
    `key template (${r.template.restricted ? 'AES-GCM only, not modifiable or copyable' : 'portable'}): ${r.template.works ? 'accepted' : r.template.detail}`,
    ...r.ivTrials.map(
      (t) => `GCM IV ${describeIv(t.setting)}: ${t.works ? 'works' : 'does not work'} (${t.detail})`,
    ),
    ...(r.objectSearch.works
      ? []
      : [`object search: does not work (${r.objectSearch.detail}); stray key objects not checked`]),
    ...r.strays.map((x) =>
      x.label.startsWith(`keygate:${CHECK_INSTANCE}:`)
        ? `stray key object ${x.label}: a scratch key of an interrupted hsm check: delete it with pkcs11-tool`
        : x.why === 'destroyed'
          ? `stray key object ${x.label}: its key is destroyed (an unfinished destroy: run keys destroy again)`
          : `stray key object ${x.label}: no such key version in the store (left by a crash between key generation and the store update, or not keygate's): check, then delete it with pkcs11-tool`,
    ),
    `profile ${r.profile}, configured gcmIv ${describeIv(r.configured)}`,
    r.verdict.text,
  ];
  return lines;
}
