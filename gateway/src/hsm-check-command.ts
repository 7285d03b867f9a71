import { isInstanceId, isKeyId, KeyState } from '@keygate/shared/api';
import { systemRandom } from '@keygate/shared/crypto';
import { isKeygateError } from '@keygate/shared/errors';
import { Pkcs11Hsm } from './adapters/pkcs11/pkcs11-hsm.js';
import { HSM_PROFILES } from './adapters/pkcs11/profiles.js';
import { CHECK_INSTANCE, formatProbe, probeToken } from './adapters/pkcs11/token-probe.js';
import type { GatewayConfig } from './config.js';
import { newId } from './core/keys/ids.js';
import type { KeyRuntime } from './key-runtime.js';

/**
 * `keygate-gateway hsm check` (docs/hsm.md): the HSM's status, a wrap/unwrap round trip with the
 * configured settings and (PKCS#11) the token probe: its report, then its verdict as the last line.
 * Exit 0 only when the round trip worked and the verdict is OK. A failed round trip does not hide
 * the probe: the probe is what says which settings would work.
 */
export async function runHsmCheck(
  rt: KeyRuntime,
  config: GatewayConfig,
  out: (line: string) => void,
): Promise<number> {
  const status = rt.hsm.status();
  out(JSON.stringify({ status }, null, 2));
  if (!status.ready && status.backend === 'pkcs11') {
    out(`FAILED: the HSM is not ready (${status.reasons.join('; ')})`);
    return 1;
  }
  if (config.hsm.backend !== 'pkcs11' || !(rt.device instanceof Pkcs11Hsm)) {
    return (await hsmRoundTrip(rt, out)).ok ? 0 : 1;
  }
  const h = config.hsm;
  const report = await probeToken(rt.device, {
    profileName: h.profile,
    profile: HSM_PROFILES[h.profile],
    configured: h.gcmIv,
    restrictMechanisms: h.restrictMechanisms,
    random: systemRandom,
    isLive: async (instance, crkId, versionId) => {
      if (!isInstanceId(instance) || !isKeyId(crkId)) return 'unknown';
      const key = await rt.store.get(instance, crkId, { fresh: true }).catch(() => undefined);
      if (key === undefined || !key.versions.some((v) => v.id === versionId)) return 'unknown';
      return key.state === KeyState.DESTROYED ? 'destroyed' : 'live';
    },
  });
  // The round trip deletes its key by searching for it: where searches find nothing it would
  // leave the key on the token, and the probe's verdict already says the token cannot serve.
  let roundTrip: { readonly ok: boolean; readonly why?: string } = { ok: false };
  if (report.objectSearch.works) roundTrip = await hsmRoundTrip(rt, out);
  else out(JSON.stringify({ wrapUnwrap: 'skipped', why: 'object search does not work' }));
  const lines = formatProbe(report);
  if (!roundTrip.ok && report.verdict.ok) {
    // The trials worked but the gateway's own path did not: say so rather than OK.
    lines[lines.length - 1] =
      `FAILED: wrap/unwrap with the configured settings failed (${roundTrip.why}) although the probe's trials worked`;
  }
  for (const line of lines) out(line);
  return roundTrip.ok && report.verdict.ok ? 0 : 1;
}

/** Generate, wrap, unwrap and destroy a scratch key through the gateway's own HSM path. */
async function hsmRoundTrip(
  rt: KeyRuntime,
  out: (line: string) => void,
): Promise<{ readonly ok: boolean; readonly why?: string }> {
  const backend = rt.hsm.status().backend;
  const ref = { instance: CHECK_INSTANCE, crkId: newId(systemRandom), versionId: 'check' };
  const dek = systemRandom(32);
  try {
    await rt.hsm.generateKey(ref);
    const sealed = await rt.hsm.encrypt(ref, dek, Buffer.from('keygate hsm check'));
    const back = await rt.hsm.decrypt(ref, sealed, Buffer.from('keygate hsm check'));
    const ok = back.equals(dek);
    back.fill(0);
    out(JSON.stringify({ wrapUnwrap: ok ? 'ok' : 'MISMATCH', backend }));
    return ok ? { ok } : { ok, why: 'unwrap gave other bytes' };
  } catch (err) {
    // A catalogue error's code and detail (CKR name, PKCS#11 function) say what refused; no secret in them.
    if (!isKeygateError(err)) throw err;
    const detail = (err.detail ?? {}) as Record<string, unknown>;
    const ckr = typeof detail.ckr === 'string' ? detail.ckr : undefined;
    const method = typeof detail.method === 'string' ? detail.method : undefined;
    out(JSON.stringify({ wrapUnwrap: 'FAILED', backend, code: err.code, ckr, method }));
    return { ok: false, why: [err.code, ckr, method].filter((x) => x !== undefined).join(' ') };
  } finally {
    dek.fill(0);
    await rt.hsm.destroyKey(ref).catch(() => undefined);
  }
}
