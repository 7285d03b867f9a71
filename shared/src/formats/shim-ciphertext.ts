import { isUtf8 } from 'node:buffer';
import { KeygateError } from '../errors/index.js';
import { ByteReader, malformed } from './byte-reader.js';

/**
 * The shim's ciphertext: what kube-apiserver stores for a KMS Encrypt. Layout (docs/formats.md):
 *
 *   magic "kg" (2) | format 0x01 (1) | alg (1) | key_id length k (1) | key_id (k, UTF-8)
 *   | wrapped DEK length w (2, BE) | wrapped DEK (w) | IV (16 CBC / 12 GCM) | ciphertext | tag (32 / 16)
 *
 * Everything before the IV is the header; the header is the AEAD's additional data, so the key_id
 * and the wrapped DEK are authenticated along with the payload.
 */
export const SHIM_MAGIC = Buffer.from('kg', 'latin1');
export const SHIM_FORMAT_V1 = 0x01;

/** Payload algorithms. The value is the byte written in the header. */
export const ShimAlg = { A256CBC_HS512: 0x01, A256GCM: 0x02 } as const;
export type ShimAlg = (typeof ShimAlg)[keyof typeof ShimAlg];

const ALG_SIZES: Record<ShimAlg, { iv: number; tag: number; block: number }> = {
  [ShimAlg.A256CBC_HS512]: { iv: 16, tag: 32, block: 16 },
  [ShimAlg.A256GCM]: { iv: 12, tag: 16, block: 1 },
};

/** Size limits of the format itself (the API version's limit is passed to the encoder). */
export const SHIM_LIMITS = {
  maxKeyIdBytes: 255,
  maxWrappedDekBytes: 4096,
  /** kube-apiserver rejects a v2 EncryptResponse.ciphertext over 1024 bytes. */
  v2MaxCiphertextBytes: 1024,
  /** v1 stores the plugin's ciphertext behind a uint16 length. */
  v1MaxCiphertextBytes: 65535,
} as const;

/** A parsed shim ciphertext. `header` is the exact AAD bytes. */
export interface ShimCiphertext {
  readonly alg: ShimAlg;
  readonly keyId: string;
  readonly wrappedDek: Buffer;
  readonly iv: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
  readonly header: Buffer;
}

/** Sizes of IV and tag for an algorithm. */
export function shimAlgSizes(alg: ShimAlg): { iv: number; tag: number } {
  return ALG_SIZES[alg];
}

/** Builds the header (the AAD) for a new ciphertext. Throws on out-of-range fields. */
export function encodeShimHeader(alg: ShimAlg, keyId: string, wrappedDek: Uint8Array): Buffer {
  if (!(alg in ALG_SIZES)) throw new RangeError(`unknown algorithm ${alg}`);
  const kid = Buffer.from(keyId, 'utf8');
  if (kid.length < 1 || kid.length > SHIM_LIMITS.maxKeyIdBytes)
    throw new RangeError('key_id must be 1..255 bytes');
  if (wrappedDek.length < 1 || wrappedDek.length > SHIM_LIMITS.maxWrappedDekBytes) {
    throw new RangeError('wrapped DEK must be 1..4096 bytes');
  }
  const head = Buffer.alloc(5 + kid.length + 2);
  SHIM_MAGIC.copy(head, 0);
  head[2] = SHIM_FORMAT_V1;
  head[3] = alg;
  head[4] = kid.length;
  kid.copy(head, 5);
  head.writeUInt16BE(wrappedDek.length, 5 + kid.length);
  return Buffer.concat([head, wrappedDek]);
}

/** Serialises header, IV, ciphertext and tag; throws CIPHERTEXT_TOO_LARGE_ERR past `maxBytes`. */
export function encodeShimCiphertext(
  header: Buffer,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  maxBytes: number,
): Buffer {
  const total = header.length + iv.length + ciphertext.length + tag.length;
  if (total > maxBytes) {
    throw new KeygateError('CIPHERTEXT_TOO_LARGE_ERR', { detail: { size: total, limit: maxBytes } });
  }
  return Buffer.concat([header, iv, ciphertext, tag], total);
}

/**
 * Parses untrusted bytes. Structural problems of any kind throw UNPROCESSABLE_CIPHERTEXT_ERR;
 * authenticity is checked later by the AEAD over `header`.
 */
export function decodeShimCiphertext(
  input: Uint8Array,
  maxBytes: number = SHIM_LIMITS.v1MaxCiphertextBytes,
): ShimCiphertext {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.length);
  if (buf.length > maxBytes) malformed('too large');
  const r = new ByteReader(buf);
  if (!r.bytes(2).equals(SHIM_MAGIC)) malformed('magic');
  if (r.u8() !== SHIM_FORMAT_V1) malformed('format version');
  const alg = r.u8();
  if (alg !== ShimAlg.A256CBC_HS512 && alg !== ShimAlg.A256GCM) malformed('algorithm');
  const kidLen = r.u8();
  if (kidLen === 0) malformed('empty key_id');
  const kidBytes = r.bytes(kidLen);
  // Well-formed UTF-8 is exactly what survives a decode and re-encode unchanged (checked without a copy).
  if (!isUtf8(kidBytes)) malformed('key_id utf-8');
  const keyId = kidBytes.toString('utf8');
  const wLen = r.u16();
  if (wLen === 0 || wLen > SHIM_LIMITS.maxWrappedDekBytes) malformed('wrapped DEK length');
  const wrappedDek = r.bytes(wLen);
  const header = buf.subarray(0, r.offset);
  const sizes = ALG_SIZES[alg];
  const iv = r.bytes(sizes.iv);
  const bodyLen = r.remaining - sizes.tag;
  if (bodyLen < 0) malformed('truncated');
  if (alg === ShimAlg.A256CBC_HS512 && (bodyLen === 0 || bodyLen % sizes.block !== 0))
    malformed('cbc length');
  const ciphertext = r.bytes(bodyLen);
  const tag = r.bytes(sizes.tag);
  return { alg, keyId, wrappedDek, iv, ciphertext, tag, header };
}
