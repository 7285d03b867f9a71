import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { keyCollection } from '../key-json.js';
import { parseKeyListQuery } from '../list-query.js';
import { runOperation } from '../operation.js';

/** GET /api/v2/keys: a page of the instance's keys (`limit`, `offset`, `state`, `extractable`). */
export async function handleListKeys(c: Ctx, deps: AppDeps): Promise<Response> {
  const out = await runOperation(c, deps, { operation: 'key.list' }, async ({ instance }) => {
    const page = await deps.keys.listPage(
      instance,
      parseKeyListQuery((name) => c.req.query(name)),
    );
    return { value: keyCollection(page.items) };
  });
  return c.json(out);
}
