import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { runOperation } from '../operation.js';

/** DELETE /api/v2/keys/:id: destroys the key and deletes its HSM objects (204, as Key Protect). */
export async function handleDestroyKey(c: Ctx, deps: AppDeps, keyId: string): Promise<Response> {
  await runOperation(
    c,
    deps,
    { operation: 'key.destroy', role: 'keys:admin', keyId },
    async ({ instance }) => {
      await deps.keys.destroy(instance, keyId);
      return { value: undefined };
    },
  );
  return c.body(null, 204);
}
