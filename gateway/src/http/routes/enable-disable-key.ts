import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { runOperation } from '../operation.js';

/** POST /api/v2/keys/:id/actions/disable|enable: suspend or re-activate (204, as Key Protect). */
export async function handleSetKeyEnabled(
  c: Ctx,
  deps: AppDeps,
  keyId: string,
  enabled: boolean,
): Promise<Response> {
  const operation = enabled ? 'key.enable' : 'key.disable';
  await runOperation(c, deps, { operation, keyId }, async ({ instance }) => {
    await (enabled ? deps.keys.enable(instance, keyId) : deps.keys.disable(instance, keyId));
    return { value: undefined };
  });
  return c.body(null, 204);
}
