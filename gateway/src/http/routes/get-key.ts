import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { keyCollection } from '../key-json.js';
import { runOperation } from '../operation.js';

/**
 * GET /api/v2/keys/:id (`key.get`) and GET /api/v2/keys/:id/metadata (`key.metadata`): one key with
 * its current version, destroyed ones included (state 5). Root keys have no payload to leave out,
 * so both answer the same body; each is audited as what it was.
 */
export async function handleGetKey(
  c: Ctx,
  deps: AppDeps,
  keyId: string,
  operation: 'key.get' | 'key.metadata' = 'key.get',
): Promise<Response> {
  const out = await runOperation(c, deps, { operation, keyId }, async ({ instance }) => {
    const key = await deps.keys.get(instance, keyId);
    return { value: keyCollection([key]), keyVersion: key.versions[key.versions.length - 1]?.id };
  });
  return c.json(out);
}
