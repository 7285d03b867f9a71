import { rotateKeyRequest } from '@keygate/shared/api';
import { parseJsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { runOperation } from '../operation.js';
import { noteRotation } from './key-rotation.js';

/**
 * POST /api/v2/keys/:id/actions/rotate: a new current version (204, as Key Protect, whatever
 * `Prefer` says). A body with Key Protect's `payload` (own key material) is BAD_BODY_ERR.
 */
export async function handleRotateKey(c: Ctx, deps: AppDeps, keyId: string): Promise<Response> {
  await runOperation(c, deps, { operation: 'key.rotate', keyId }, async ({ instance, principal }) => {
    await parseJsonBody(c, rotateKeyRequest);
    const key = await deps.keys.rotate(instance, keyId);
    await noteRotation(c, deps, key, principal.subject);
    return { value: undefined, keyVersion: key.versions[key.versions.length - 1]?.id };
  });
  return c.body(null, 204);
}
