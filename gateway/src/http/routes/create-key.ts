import { createKeyRequest } from '@keygate/shared/api';
import { parseJsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { keyCollection } from '../key-json.js';
import { runOperation } from '../operation.js';

/** POST /api/v2/keys: creates a root key (a first version in the HSM). */
export async function handleCreateKey(c: Ctx, deps: AppDeps): Promise<Response> {
  const out = await runOperation(
    c,
    deps,
    { operation: 'key.create', role: 'keys:admin' },
    async ({ instance }) => {
      const req = await parseJsonBody(c, createKeyRequest);
      const res = req.resources[0];
      const key = await deps.keys.create({ instance, name: res?.name ?? '', description: res?.description });
      return { value: keyCollection([key]), keyVersion: key.versions[0]?.id };
    },
  );
  return c.json(out, 201);
}
