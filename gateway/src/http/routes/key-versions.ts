import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { keyVersionCollection } from '../key-json.js';
import { parseVersionListQuery } from '../list-query.js';
import { runOperation } from '../operation.js';

/** GET /api/v2/keys/:id/versions: a page of the key's versions, newest first, as Key Protect. */
export async function handleKeyVersions(c: Ctx, deps: AppDeps, keyId: string): Promise<Response> {
  const out = await runOperation(c, deps, { operation: 'key.versions', keyId }, async ({ instance }) => {
    const q = parseVersionListQuery((name) => c.req.query(name));
    const { key, page } = await deps.keys.versions(instance, keyId, q);
    return {
      value: keyVersionCollection(page, q.totalCount),
      keyVersion: key.versions[key.versions.length - 1]?.id,
    };
  });
  return c.json(out);
}
