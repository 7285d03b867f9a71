import { HEADERS } from '@keygate/shared/api';
import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { keyCollection } from '../key-json.js';
import { runOperation } from '../operation.js';
import { preferReturn } from '../prefer.js';

/**
 * DELETE /api/v2/keys/:id: destroys the key and deletes its HSM objects. As Key Protect: 204, or
 * 200 with the destroyed key (state 5) when `Prefer: return=representation`; a key destroyed
 * before answers 410 KEY_DELETED_ERR.
 */
export async function handleDestroyKey(c: Ctx, deps: AppDeps, keyId: string): Promise<Response> {
  const key = await runOperation(c, deps, { operation: 'key.destroy', keyId }, async ({ instance }) => ({
    value: await deps.keys.destroy(instance, keyId),
  }));
  if (preferReturn(c.req.header(HEADERS.prefer)) === 'representation') return c.json(keyCollection([key]));
  return c.body(null, 204);
}
