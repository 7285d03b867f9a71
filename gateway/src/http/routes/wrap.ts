import { type WrapResponse, wrapRequest } from '@keygate/shared/api';
import { shortHash, zeroize } from '@keygate/shared/crypto';
import { parseJsonBody, secretFromBase64Field } from '../body.js';
import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { noteKeyUse, noteShimReport } from '../fleet-notes.js';
import { runOperation } from '../operation.js';

/** POST /api/v2/keys/:id/actions/wrap */
export async function handleWrap(c: Ctx, deps: AppDeps, keyId: string): Promise<Response> {
  const out = await runOperation(c, deps, { operation: 'wrap', keyId }, async ({ instance, principal }) => {
    noteShimReport(c, deps, principal, instance, keyId);
    const req = await parseJsonBody(c, wrapRequest);
    const plaintext =
      req.plaintext === undefined ? undefined : secretFromBase64Field(req.plaintext, 'plaintext');
    try {
      const r = await deps.keys.wrap({ instance, keyId, plaintext, aad: req.aad ?? [] });
      noteKeyUse(deps, principal, instance, keyId, 'wrap', r.keyVersionId);
      const value: WrapResponse = {
        ciphertext: r.ciphertext.toString('base64'),
        keyVersion: { id: r.keyVersionId },
      };
      if (r.generated) {
        value.plaintext = r.generated.toString('base64');
        zeroize(r.generated);
      }
      return { value, keyVersion: r.keyVersionId, wrappedDekHash: shortHash(r.ciphertext) };
    } finally {
      zeroize(plaintext);
    }
  });
  return c.json(out);
}
