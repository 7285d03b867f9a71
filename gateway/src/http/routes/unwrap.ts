import { type UnwrapResponse, unwrapRequest } from '@keygate/shared/api';
import { shortHash, zeroize } from '@keygate/shared/crypto';
import { fromBase64, parseJsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { noteKeyUse, noteShimReport } from '../fleet-notes.js';
import { runOperation } from '../operation.js';

/** POST /api/v2/keys/:id/actions/unwrap */
export async function handleUnwrap(c: Ctx, deps: AppDeps, keyId: string): Promise<Response> {
  const out = await runOperation(c, deps, { operation: 'unwrap', keyId }, async ({ instance, principal }) => {
    noteShimReport(c, deps, principal, instance, keyId);
    const req = await parseJsonBody(c, unwrapRequest);
    const ciphertext = fromBase64(req.ciphertext);
    const r = await deps.keys.unwrap({ instance, keyId, ciphertext, aad: req.aad ?? [] });
    noteKeyUse(deps, principal, instance, keyId, 'unwrap', r.keyVersionId);
    const value: UnwrapResponse = {
      plaintext: r.plaintext.toString('base64'),
      keyVersion: { id: r.keyVersionId },
    };
    zeroize(r.plaintext);
    if (r.rewrapped) {
      value.ciphertext = r.rewrapped.ciphertext.toString('base64');
      value.rewrappedKeyVersion = { id: r.rewrapped.keyVersionId };
    }
    return { value, keyVersion: r.keyVersionId, wrappedDekHash: shortHash(ciphertext) };
  });
  return c.json(out);
}
