import { INSTANCE_ID_PATTERN, INSTANCE_ID_RULE } from '@keygate/shared/api';
import { z } from 'zod';
import { API_KEY_HASH_PATTERN } from './api-key.js';
import { ROLES } from './principal.js';

const IDENTITY_NAME = /^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,127}$/;

/** One service identity: who it is, how it proves it, which certificates may use it, what it may do. */
export const identitySchema = z.strictObject({
  name: z.string().regex(IDENTITY_NAME, 'a name of letters, digits and ._@:/- (max 128)'),
  apiKeyHashes: z
    .array(
      z.string().regex(API_KEY_HASH_PATTERN, 'sha256:<64 hex digits> from `keygate-gateway apikey create`'),
    )
    .min(1),
  certIdentities: z.array(z.string().min(1).max(1024)).min(1),
  roles: z.record(z.string().regex(INSTANCE_ID_PATTERN, INSTANCE_ID_RULE), z.array(z.enum(ROLES)).min(1)),
});
export type IdentityConfig = z.infer<typeof identitySchema>;

/**
 * The `identities:` list the gateway config embeds. Names and API key hashes must be unique, so a
 * key always resolves to exactly one identity.
 */
export const identitiesSchema = z.array(identitySchema).superRefine((list, ctx) => {
  const names = new Set<string>();
  const hashes = new Set<string>();
  list.forEach((identity, i) => {
    if (names.has(identity.name)) {
      ctx.addIssue({ code: 'custom', path: [i, 'name'], message: 'a unique identity name' });
    }
    names.add(identity.name);
    identity.apiKeyHashes.forEach((hash, j) => {
      if (hashes.has(hash)) {
        ctx.addIssue({
          code: 'custom',
          path: [i, 'apiKeyHashes', j],
          message: 'an API key hash used only once',
        });
      }
      hashes.add(hash);
    });
  });
});
export type IdentitiesConfig = z.infer<typeof identitiesSchema>;
