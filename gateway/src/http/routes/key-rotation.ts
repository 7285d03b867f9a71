import { errorCollectionFor, isKeyId } from '@keygate/shared/api';
import { isKeygateError, KeygateError } from '@keygate/shared/errors';
import { z } from 'zod';
import { recordRotation } from '../../core/fleet/rotations.js';
import { disableVersionGuarded, rotationReasons } from '../../core/fleet/version-guard.js';
import { parseJsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { logError } from '../errors.js';
import { runOperation } from '../operation.js';

/** Body of disable/enable: optional `{"force": true}` (disable only: overrides the rotation guard). */
const versionActionRequest = z.strictObject({ force: z.boolean().optional() }).nullable();

/**
 * GET /api/v2/keygate/keys/:id/rotation: the key's latest rotation and its status (RotationStatus,
 * docs/rotation.md); 404 NOT_FOUND_ERR when the key was never rotated (or no fleet store is set).
 */
export async function handleRotationStatus(c: Ctx, deps: AppDeps, keyId: string): Promise<Response> {
  const out = await runOperation(c, deps, { operation: 'key.rotation', keyId }, async ({ instance }) => {
    const status = await deps.rotations?.status(instance, keyId);
    if (status === undefined) {
      throw new KeygateError('NOT_FOUND_ERR', { detail: { keyId, reason: 'no rotation recorded' } });
    }
    return { value: status, keyVersion: status.currentVersion };
  });
  return c.json(out);
}

/**
 * POST /api/v2/keys/:id/versions/:version/actions/disable|enable (204). Disable refuses with 409
 * ROTATION_NOT_CONVERGED, the reasons in the error body (`resources[0].rotationReasons`), unless
 * the body says `{"force": true}` (audited with reason `forced`).
 */
export async function handleVersionAction(
  c: Ctx,
  deps: AppDeps,
  keyId: string,
  versionId: string,
  action: 'disable' | 'enable',
): Promise<Response> {
  const operation = action === 'disable' ? 'key.version.disable' : 'key.version.enable';
  try {
    await runOperation(c, deps, { operation, keyId }, async ({ instance }) => {
      const body = await parseJsonBody(c, versionActionRequest);
      if (!isKeyId(versionId)) throw new KeygateError('NOT_FOUND_ERR', { detail: { reason: 'version id' } });
      if (action === 'enable') {
        await deps.keys.enableVersion(instance, keyId, versionId);
        return { value: undefined, keyVersion: versionId };
      }
      const guard = { keys: deps.keys, rotations: deps.rotations };
      const r = await disableVersionGuarded(guard, instance, keyId, versionId, body?.force === true);
      return { value: undefined, keyVersion: versionId, ...(r.forced ? { reason: 'forced' as const } : {}) };
    });
  } catch (err) {
    const reasons = rotationReasons(err);
    if (!isKeygateError(err) || reasons.length === 0) throw err;
    logError(c, err);
    const body = errorCollectionFor(err.code);
    const [first, ...rest] = body.resources;
    return c.json({ ...body, resources: [{ ...first, rotationReasons: reasons }, ...rest] }, 409);
  }
  return c.body(null, 204);
}

/** After the key store rotated (POST …/actions/rotate): the rotation record; never fails the request. */
export function noteRotation(
  c: Ctx,
  deps: AppDeps,
  rotated: Parameters<typeof recordRotation>[2],
  by: string,
) {
  return recordRotation(deps.fleet?.store, c.get('log'), rotated, by, deps.clock.now());
}
