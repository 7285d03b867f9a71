import { type UnwrapResponse, unwrapRequest } from '@keygate/shared/api';
import { shortHash, zeroize } from '@keygate/shared/crypto';
import { fromBase64, parseJsonBody } from '../body.js';
import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { runOperation } from '../operation.js';

/** POST /api/v2/keys/:id/actions/unwrap */
export async function handleUnwrap(c: Ctx, deps: AppDeps, keyId: string): Promise<Response> {
  const out = await runOperation(c, deps, { operation: 'unwrap', keyId }, async ({ instance }) => {
    const req = await parseJsonBody(c, unwrapRequest);
    const ciphertext = fromBase64(req.ciphertext);
    const r = await deps.keys.unwrap({ instance, keyId, ciphertext, aad: req.aad ?? [] });
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
