import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { keyCollection } from '../key-json.js';
import { runOperation } from '../operation.js';

/** GET /api/v2/keys: the instance's live keys. */
export async function handleListKeys(c: Ctx, deps: AppDeps): Promise<Response> {
  const out = await runOperation(
    c,
    deps,
    { operation: 'key.list', role: 'keys:read' },
    async ({ instance }) => ({
      value: keyCollection(await deps.keys.list(instance)),
    }),
  );
  return c.json(out);
}
