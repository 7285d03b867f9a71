import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { keyCollection } from '../key-json.js';
import { runOperation } from '../operation.js';

/** GET /api/v2/keys/:id: one key with its current version. */
export async function handleGetKey(c: Ctx, deps: AppDeps, keyId: string): Promise<Response> {
  const out = await runOperation(
    c,
    deps,
    { operation: 'key.get', role: 'keys:read', keyId },
    async ({ instance }) => {
      const key = await deps.keys.get(instance, keyId);
      return { value: keyCollection([key]), keyVersion: key.versions[key.versions.length - 1]?.id };
    },
  );
  return c.json(out);
}
