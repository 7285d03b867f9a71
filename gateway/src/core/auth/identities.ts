import { INSTANCE_ID_PATTERN, INSTANCE_ID_RULE } from '@keygate/shared/api';
import { z } from 'zod';
import { API_KEY_HASH_PATTERN } from './api-key.js';
import { GLOBAL_ROLES, GLOBAL_SCOPE, ROLES } from './principal.js';

/** A service identity name: letters, digits and ._@:/- (max 128), starting with a letter or digit. */
export const IDENTITY_NAME = /^[A-Za-z0-9][A-Za-z0-9._@:/-]{0,127}$/;

/**
 * Roles per instance id; the key `'*'` holds global roles (only `identities:admin`), which in turn
 * are held nowhere else.
 */
export const rolesSchema = z
  .record(
    z.string().refine((k) => k === GLOBAL_SCOPE || INSTANCE_ID_PATTERN.test(k), `'*' or ${INSTANCE_ID_RULE}`),
    z.array(z.enum(ROLES)).min(1),
  )
  .superRefine((roles, ctx) => {
    for (const [scope, list] of Object.entries(roles)) {
      const global = scope === GLOBAL_SCOPE;
      for (const role of list) {
        if (GLOBAL_ROLES.includes(role) !== global) {
          ctx.addIssue({
            code: 'custom',
            path: [scope],
            message: global
              ? `only ${GLOBAL_ROLES.join(', ')} under '${GLOBAL_SCOPE}'`
              : `${role} only under '${GLOBAL_SCOPE}' (a global role)`,
          });
        }
      }
    }
  });

/** One service identity: who it is, how it proves it, which certificates may use it, what it may do. */
export const identitySchema = z.strictObject({
  name: z.string().regex(IDENTITY_NAME, 'a name of letters, digits and ._@:/- (max 128)'),
  apiKeyHashes: z
    .array(
      z.string().regex(API_KEY_HASH_PATTERN, 'sha256:<64 hex digits> from `keygate-gateway apikey create`'),
    )
    .min(1),
  certIdentities: z.array(z.string().min(1).max(1024)).min(1),
  roles: rolesSchema,
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

/** The body of identity create/replace (admin API) and the CLI's options, validated. */
export const identityFieldsSchema = z.strictObject({
  certIdentities: z.array(z.string().min(1).max(1024)).min(1).max(64),
  roles: rolesSchema,
});
export type IdentityFieldsInput = z.infer<typeof identityFieldsSchema>;

/** An API key label: a short text for people (which cluster or person holds the key). */
export const API_KEY_LABEL = z.string().min(1).max(200);
