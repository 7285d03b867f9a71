import { KeygateError } from '../errors/index.js';
import {
  decodeShimCiphertext,
  encodeShimCiphertext,
  encodeShimHeader,
  ShimAlg,
  type ShimCiphertext,
  shimAlgSizes,
} from '../formats/shim-ciphertext.js';
import { a256cbcHs512Decrypt, a256cbcHs512Encrypt } from './a256cbc-hs512.js';
import { aes256GcmDecrypt, aes256GcmEncrypt } from './aes-gcm.js';
import { hkdfSha256 } from './hkdf.js';
import type { Random } from './random.js';

const INFO: Record<ShimAlg, string> = {
  [ShimAlg.A256CBC_HS512]: 'keygate/shim/v1/A256CBC-HS512',
  [ShimAlg.A256GCM]: 'keygate/shim/v1/A256GCM',
};
const KEY_BYTES: Record<ShimAlg, number> = { [ShimAlg.A256CBC_HS512]: 64, [ShimAlg.A256GCM]: 32 };
const SALT = Buffer.alloc(32);
/** The shortest DEK the 256-bit payload algorithms accept. */
export const MIN_DEK_BYTES = 32;

/**
 * Derives the payload key of `alg` from a DEK with HKDF-SHA-256 (fixed zero salt, an info string
 * naming the format and algorithm), so one DEK never keys two algorithms. The caller owns and
 * zeroes the result.
 */
export function deriveDataKey(dek: Uint8Array, alg: ShimAlg): Buffer {
  // Both algorithms are 256-bit: a DEK below 32 bytes would be the weakest link (DEK_TOO_SHORT_ERR).
  if (dek.length < MIN_DEK_BYTES) {
    throw new KeygateError('DEK_TOO_SHORT_ERR', { detail: { length: dek.length, min: MIN_DEK_BYTES } });
  }
  return hkdfSha256(dek, SALT, INFO[alg], KEY_BYTES[alg]);
}

/** What sealShim needs: the payload key (from deriveDataKey) and what goes in the header. */
export interface SealInput {
  readonly alg: ShimAlg;
  readonly keyId: string;
  readonly wrappedDek: Uint8Array;
  readonly dataKey: Uint8Array;
  readonly plaintext: Uint8Array;
  readonly random: Random;
  /** The API version's ciphertext limit (1024 for v2, 65535 for v1). */
  readonly maxBytes: number;
  /**
   * Optional: encodeShimHeader(alg, keyId, wrappedDek), built once by a caller that seals many
   * payloads under one DEK. It must be exactly that; when absent it is built here.
   */
  readonly header?: Buffer | undefined;
}

/** Encrypts a payload into a shim ciphertext with a fresh random IV. */
export function sealShim(input: SealInput): Buffer {
  const header = input.header ?? encodeShimHeader(input.alg, input.keyId, input.wrappedDek);
  const iv = input.random(shimAlgSizes(input.alg).iv);
  const sealed =
    input.alg === ShimAlg.A256CBC_HS512
      ? a256cbcHs512Encrypt(input.dataKey, iv, input.plaintext, header)
      : aes256GcmEncrypt(input.dataKey, iv, input.plaintext, header);
  return encodeShimCiphertext(header, iv, sealed.ciphertext, sealed.tag, input.maxBytes);
}

/** Authenticates and decrypts a parsed shim ciphertext; any failure is UNPROCESSABLE_CIPHERTEXT_ERR. */
export function openShim(parsed: ShimCiphertext, dataKey: Uint8Array): Buffer {
  return parsed.alg === ShimAlg.A256CBC_HS512
    ? a256cbcHs512Decrypt(dataKey, parsed.iv, parsed.ciphertext, parsed.header, parsed.tag)
    : aes256GcmDecrypt(dataKey, parsed.iv, parsed.ciphertext, parsed.header, parsed.tag);
}

/** Parses and opens in one step (convenience for tools and tests). */
export function openShimBytes(bytes: Uint8Array, dataKeyFor: (parsed: ShimCiphertext) => Uint8Array): Buffer {
  const parsed = decodeShimCiphertext(bytes);
  return openShim(parsed, dataKeyFor(parsed));
}
