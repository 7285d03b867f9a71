import { type RewrapResponse, rewrapRequest } from '@keygate/shared/api';
import { shortHash } from '@keygate/shared/crypto';
import { fromBase64, parseJsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { noteKeyUse, noteShimReport } from '../fleet-notes.js';
import { runOperation } from '../operation.js';

/** POST /api/v2/keys/:id/actions/rewrap */
export async function handleRewrap(c: Ctx, deps: AppDeps, keyId: string): Promise<Response> {
  const out = await runOperation(c, deps, { operation: 'rewrap', keyId }, async ({ instance, principal }) => {
    noteShimReport(c, deps, principal, instance, keyId);
    const req = await parseJsonBody(c, rewrapRequest);
    const ciphertext = fromBase64(req.ciphertext);
    const r = await deps.keys.rewrap({ instance, keyId, ciphertext, aad: req.aad ?? [] });
    noteKeyUse(deps, principal, instance, keyId, 'rewrap', r.rewrappedKeyVersionId);
    const value: RewrapResponse = {
      ciphertext: r.ciphertext.toString('base64'),
      keyVersion: { id: r.keyVersionId },
      rewrappedKeyVersion: { id: r.rewrappedKeyVersionId },
    };
    return { value, keyVersion: r.rewrappedKeyVersionId, wrappedDekHash: shortHash(ciphertext) };
  });
  return c.json(out);
}
