import { createKeyRequest, HEADERS } from '@keygate/shared/api';
import { parseJsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { keyCollection, keyIdCollection } from '../key-json.js';
import { runOperation } from '../operation.js';
import { preferReturn } from '../prefer.js';

/**
 * POST /api/v2/keys: creates a root key (a first version in the HSM). 201 with the key, or with
 * only its id when `Prefer: return=minimal` (a root key has no material to return either way).
 */
export async function handleCreateKey(c: Ctx, deps: AppDeps): Promise<Response> {
  const key = await runOperation(c, deps, { operation: 'key.create' }, async ({ instance }) => {
    const req = await parseJsonBody(c, createKeyRequest);
    const res = req.resources[0];
    const key = await deps.keys.create({ instance, name: res?.name ?? '', description: res?.description });
    return { value: key, keyVersion: key.versions[0]?.id };
  });
  const minimal = preferReturn(c.req.header(HEADERS.prefer)) === 'minimal';
  return c.json(minimal ? keyIdCollection(key) : keyCollection([key]), 201);
}
