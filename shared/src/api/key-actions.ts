import { z } from 'zod';

/**
 * Request and response bodies of the Key Protect compatible key actions
 * (`POST /api/v2/keys/{id}/actions/{wrap|unwrap|rewrap}`), shared by the gateway (which
 * validates requests) and the shim (which validates responses).
 */

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Standard base64 text; the length must be a multiple of 4. */
export const base64String = z
  .string()
  .max(16384)
  .refine((s) => s.length % 4 === 0 && BASE64.test(s), { message: 'must be standard base64' });

/** Caller's additional authenticated data strings. */
export const aadList = z.array(z.string().max(1024)).max(16);

export const wrapRequest = z.strictObject({
  plaintext: base64String.optional(),
  aad: aadList.optional(),
});
export type WrapRequest = z.infer<typeof wrapRequest>;

export const keyVersionRef = z.object({ id: z.string().min(1).max(64) });
export type KeyVersionRef = z.infer<typeof keyVersionRef>;

export const wrapResponse = z.object({
  ciphertext: base64String,
  keyVersion: keyVersionRef,
  /** Present when the gateway generated the DEK. */
  plaintext: base64String.optional(),
});
export type WrapResponse = z.infer<typeof wrapResponse>;

export const unwrapRequest = z.strictObject({
  ciphertext: base64String.min(1),
  aad: aadList.optional(),
});
export type UnwrapRequest = z.infer<typeof unwrapRequest>;

export const unwrapResponse = z.object({
  plaintext: base64String,
  keyVersion: keyVersionRef,
  /** Present when the blob was not under the current version: the same DEK re-wrapped under it. */
  ciphertext: base64String.optional(),
  rewrappedKeyVersion: keyVersionRef.optional(),
});
export type UnwrapResponse = z.infer<typeof unwrapResponse>;

export const rewrapRequest = unwrapRequest;
export type RewrapRequest = UnwrapRequest;

export const rewrapResponse = z.object({
  ciphertext: base64String,
  keyVersion: keyVersionRef,
  rewrappedKeyVersion: keyVersionRef,
});
export type RewrapResponse = z.infer<typeof rewrapResponse>;

/** The key actions and the role each needs. */
export const KEY_ACTIONS = ['wrap', 'unwrap', 'rewrap'] as const;
export type KeyAction = (typeof KEY_ACTIONS)[number];
