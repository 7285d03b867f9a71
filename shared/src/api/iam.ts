import { z } from 'zod';

/** The grant type of IBM IAM's API key exchange. */
export const APIKEY_GRANT_TYPE = 'urn:ibm:params:oauth:grant-type:apikey';

/** Form body of `POST /identity/token`. */
export const tokenRequest = z.object({
  grant_type: z.literal(APIKEY_GRANT_TYPE),
  apikey: z.string().min(1).max(512),
});
export type TokenRequest = z.infer<typeof tokenRequest>;

/** IAM's token answer. `expiration` is in seconds since the epoch. */
export const tokenResponse = z.object({
  access_token: z.string().min(1),
  refresh_token: z.string().optional(),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int().positive(),
  expiration: z.number().int().positive(),
  scope: z.string().optional(),
});
export type TokenResponse = z.infer<typeof tokenResponse>;

/** IAM's error shape. `errorCode` is IAM's own (BXNIM…); `keygateCode` is ours. */
export const iamError = z.object({
  errorCode: z.string(),
  errorMessage: z.string(),
  keygateCode: z.string().optional(),
  context: z.object({ requestId: z.string().optional() }).optional(),
});
export type IamError = z.infer<typeof iamError>;
