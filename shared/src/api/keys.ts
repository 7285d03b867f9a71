import { z } from 'zod';

/** Key Protect key states (1 active, 2 suspended, 3 deactivated, 5 destroyed). */
export const KeyState = { ACTIVE: 1, SUSPENDED: 2, DEACTIVATED: 3, DESTROYED: 5 } as const;
export type KeyState = (typeof KeyState)[keyof typeof KeyState];

/** Key Protect's collection media types. */
export const COLLECTION_TYPES = {
  key: 'application/vnd.ibm.kms.key+json',
  keyVersion: 'application/vnd.ibm.kms.key.version+json',
  keyAction: 'application/vnd.ibm.kms.key_action+json',
  error: 'application/vnd.ibm.kms.error+json',
} as const;

/** A root key (CRK) as the API shows it. Never contains key material. */
export const keyResource = z.object({
  type: z.literal(COLLECTION_TYPES.key),
  id: z.string(),
  name: z.string(),
  description: z.string().optional(),
  state: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(5)]),
  extractable: z.literal(false),
  instanceId: z.string(),
  crn: z.string(),
  creationDate: z.string(),
  lastUpdateDate: z.string(),
  keyVersion: z.object({ id: z.string(), creationDate: z.string() }),
  /** keygate adds `disabledAt` to a version disabled by keys disable-version (docs/rotation.md). */
  versions: z
    .array(z.object({ id: z.string(), creationDate: z.string(), disabledAt: z.string().optional() }))
    .optional(),
  /** Key Protect's flags: true from the moment the key is destroyed (state 5). */
  deleted: z.boolean().optional(),
  deletionDate: z.string().optional(),
  /** When the current version was made by a rotation (absent before the first rotation). */
  lastRotateDate: z.string().optional(),
});
export type KeyResource = z.infer<typeof keyResource>;

/** Body of `POST /api/v2/keys` (Key Protect's create shape; only root keys exist here). */
export const createKeyRequest = z.object({
  metadata: z.object({ collectionType: z.literal(COLLECTION_TYPES.key), collectionTotal: z.literal(1) }),
  resources: z
    .array(
      z.strictObject({
        type: z.literal(COLLECTION_TYPES.key),
        name: z
          .string()
          .min(2)
          .max(90)
          .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/),
        description: z.string().max(240).optional(),
        extractable: z.literal(false).optional(),
      }),
    )
    .length(1),
});
export type CreateKeyRequest = z.infer<typeof createKeyRequest>;

/** A collection of keys, as list, get and create answer. */
export const keyCollection = z.object({
  metadata: z.object({ collectionType: z.literal(COLLECTION_TYPES.key), collectionTotal: z.number() }),
  resources: z.array(keyResource),
});
export type KeyCollection = z.infer<typeof keyCollection>;

/** `GET /api/v2/keys/{id}/versions`: a page of a root key's versions, newest first. */
export const keyVersionCollection = z.object({
  metadata: z.object({
    collectionType: z.literal(COLLECTION_TYPES.keyVersion),
    collectionTotal: z.number(),
    /** With `totalCount=true`: every version, whatever the page. */
    totalCount: z.number().optional(),
  }),
  resources: z.array(
    z.object({ id: z.string(), creationDate: z.string(), disabledAt: z.string().optional() }),
  ),
});
export type KeyVersionCollection = z.infer<typeof keyVersionCollection>;

/**
 * Body of `POST /api/v2/keys/{id}/actions/rotate`: none, `null` or `{}`. Key Protect's `payload`
 * (new material for an imported key) is refused: keygate keys are made in the HSM.
 */
export const rotateKeyRequest = z.strictObject({}).nullable();

/** Lifecycle actions on `POST /api/v2/keys/{id}/actions/{action}` besides wrap/unwrap/rewrap. */
export const LIFECYCLE_ACTIONS = ['rotate', 'disable', 'enable'] as const;
export type LifecycleAction = (typeof LIFECYCLE_ACTIONS)[number];
