import { KeygateError } from '@keygate/shared/errors';
import { z } from 'zod';
import { API_KEY_LABEL, IDENTITY_NAME, identityFieldsSchema } from '../../core/auth/identities.js';
import type { IdentityAdmin } from '../../core/auth/identity-source.js';
import type { GuardedOperation } from '../../core/auth/role-policy.js';
import { parseJsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { runOperation } from '../operation.js';

/**
 * Identity management: `/api/v2/keygate/identities` and `/api/v2/keygate/apikeys` (docs/api.md
 * "Identities"). Each call needs `identities:admin` under `'*'` in the caller's roles, is audited
 * (the identity name or API key id as `target`; never a key or hash), and changes are announced to
 * every replica. Without run-time identities (config file) every route answers 409
 * IDENTITIES_READ_ONLY.
 */

const createBody = identityFieldsSchema.extend({ name: z.string().regex(IDENTITY_NAME) });
const apiKeyBody = z.strictObject({ label: API_KEY_LABEL.optional() });

function admin(deps: AppDeps): IdentityAdmin {
  if (deps.identityAdmin === undefined) throw new KeygateError('IDENTITIES_READ_ONLY');
  return deps.identityAdmin;
}

function run<T>(
  c: Ctx,
  deps: AppDeps,
  operation: GuardedOperation,
  target: string | (() => string | undefined) | undefined,
  body: (a: IdentityAdmin) => Promise<T>,
): Promise<T> {
  const a = admin(deps);
  return runOperation(c, deps, { operation, global: true, target }, async () => ({ value: await body(a) }));
}

export async function handleListIdentities(c: Ctx, deps: AppDeps): Promise<Response> {
  const identities = await run(c, deps, 'identity.list', undefined, (a) => a.list());
  return c.json({ identities });
}

export async function handleGetIdentity(c: Ctx, deps: AppDeps, name: string): Promise<Response> {
  return c.json(await run(c, deps, 'identity.get', name, (a) => a.get(name)));
}

export async function handleCreateIdentity(c: Ctx, deps: AppDeps): Promise<Response> {
  let target: string | undefined;
  const created = await run(
    c,
    deps,
    'identity.create',
    () => target,
    async (a) => {
      const req = await parseJsonBody(c, createBody);
      target = req.name;
      return a.create(req.name, { certIdentities: req.certIdentities, roles: req.roles });
    },
  );
  return c.json(created, 201);
}

export async function handleReplaceIdentity(c: Ctx, deps: AppDeps, name: string): Promise<Response> {
  return c.json(
    await run(c, deps, 'identity.update', name, async (a) => {
      const req = await parseJsonBody(c, identityFieldsSchema);
      return a.update(name, req);
    }),
  );
}

export async function handleDeleteIdentity(c: Ctx, deps: AppDeps, name: string): Promise<Response> {
  await run(c, deps, 'identity.delete', name, (a) => a.delete(name));
  return c.body(null, 204);
}

/** 201 with the new key: shown this once (never stored, never logged or audited). */
export async function handleCreateApiKey(c: Ctx, deps: AppDeps, name: string): Promise<Response> {
  const created = await run(c, deps, 'apikey.create', name, async (a) => {
    const req = await parseJsonBody(c, apiKeyBody);
    return a.createApiKey(name, req.label);
  });
  c.header('cache-control', 'no-store');
  return c.json({ apiKey: created.apiKey, ...created.record }, 201);
}

export async function handleRevokeApiKey(c: Ctx, deps: AppDeps, id: string): Promise<Response> {
  return c.json(await run(c, deps, 'apikey.revoke', id, (a) => a.revokeApiKey(id)));
}
