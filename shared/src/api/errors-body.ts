import { z } from 'zod';
import { ERROR_CATALOGUE, type ErrorCode, isErrorCode } from '../errors/catalogue.js';
import { COLLECTION_TYPES } from './keys.js';

/** Key Protect's error collection, as every gateway API error is answered. */
export const errorCollection = z.object({
  metadata: z.object({ collectionType: z.string(), collectionTotal: z.number() }),
  resources: z
    .array(
      z.object({
        errorMsg: z.string(),
        reasons: z
          .array(
            z.object({
              code: z.string(),
              message: z.string(),
              status: z.number(),
              moreInfo: z.string().optional(),
            }),
          )
          .optional(),
      }),
    )
    .min(1),
});
export type ErrorCollection = z.infer<typeof errorCollection>;

const DOCS = 'https://github.com/keygate/keygate/blob/main/docs/errors.md';

/** The error collection for a code: fixed text only, never a cause. */
export function errorCollectionFor(code: ErrorCode): ErrorCollection {
  const spec = ERROR_CATALOGUE[code];
  return {
    metadata: { collectionType: COLLECTION_TYPES.error, collectionTotal: 1 },
    resources: [
      {
        errorMsg: spec.message,
        reasons: [
          { code, message: spec.message, status: spec.http, moreInfo: `${DOCS}#${code.toLowerCase()}` },
        ],
      },
    ],
  };
}

/** The keygate code in an error collection, when there is a known one. */
export function codeOfErrorCollection(body: unknown): ErrorCode | undefined {
  const parsed = errorCollection.safeParse(body);
  if (!parsed.success) return undefined;
  const code = parsed.data.resources[0]?.reasons?.[0]?.code;
  return isErrorCode(code) ? code : undefined;
}
