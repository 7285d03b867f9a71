import { ByteReader, malformed } from './byte-reader.js';

/**
 * The gateway's wrapped DEK (opaque to the shim). Layouts (docs/formats.md):
 *
 *   format 1: magic "kw" (2) | 0x01 (1) | key version id length v (1) | key version id (v, ASCII)
 *             | IV (12) | ciphertext (n) | GCM tag (16)
 *   format 2: magic "kw" (2) | 0x02 (1) | v (1) | key version id (v) | IV length L (1: 12 or 16)
 *             | IV (L) | ciphertext (n) | GCM tag (16)
 *
 * AES-256-GCM under the CRK version inside the HSM. The AAD (wrapAad) binds the header (up to and
 * including L), the instance, the CRK id and the caller's aad strings, so a blob unwraps only
 * where it was made. Format 1 is written for 12-byte IVs (the host's, or one a token generated
 * and appended, as AWS CloudHSM does); format 2 only for other IV lengths (16 bytes: a Luna HSM in
 * FIPS mode generates them). Unwrap reads the IV from the blob, so it never depends on the
 * gateway's current IV setting.
 */
export const WRAP_MAGIC = Buffer.from('kw', 'latin1');
export const WRAP_FORMAT_V1 = 0x01;
export const WRAP_FORMAT_V2 = 0x02;
export const WRAP_LIMITS = {
  /** The IV of format 1. */
  ivBytes: 12,
  /** IV lengths a blob may carry (format 2 names its own). */
  ivLengths: [12, 16] as readonly number[],
  tagBytes: 16,
  maxVersionIdBytes: 64,
  maxPlaintextBytes: 4096,
  maxAadStrings: 16,
  maxAadStringBytes: 1024,
} as const;

const VERSION_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** A parsed wrapped DEK. `header` is the prefix that the AAD covers. */
export interface WrappedDek {
  readonly keyVersionId: string;
  readonly iv: Buffer;
  readonly ciphertext: Buffer;
  readonly tag: Buffer;
  readonly header: Buffer;
}

/** True when `id` can be a key version id in a blob (ASCII letters, digits, `._:-`, 1..64). */
export function isValidKeyVersionId(id: string): boolean {
  return VERSION_ID.test(id);
}

/**
 * The header of a new blob for `keyVersionId` whose IV will be `ivBytes` long (known before the
 * HSM runs: the AAD covers the header): format 1 for 12 bytes, format 2 otherwise.
 */
export function encodeWrapHeader(keyVersionId: string, ivBytes: number = WRAP_LIMITS.ivBytes): Buffer {
  if (!isValidKeyVersionId(keyVersionId)) throw new RangeError('invalid key version id');
  if (!WRAP_LIMITS.ivLengths.includes(ivBytes)) throw new RangeError('unsupported IV length');
  const v = Buffer.from(keyVersionId, 'ascii');
  const v2 = ivBytes !== WRAP_LIMITS.ivBytes;
  const head = Buffer.alloc(4 + v.length + (v2 ? 1 : 0));
  WRAP_MAGIC.copy(head, 0);
  head[2] = v2 ? WRAP_FORMAT_V2 : WRAP_FORMAT_V1;
  head[3] = v.length;
  v.copy(head, 4);
  if (v2) head[4 + v.length] = ivBytes;
  return head;
}

/** The IV length a header (from encodeWrapHeader) announces. */
function headerIvBytes(header: Buffer): number {
  return header[2] === WRAP_FORMAT_V2 ? (header[header.length - 1] as number) : WRAP_LIMITS.ivBytes;
}

/** Joins header, IV, ciphertext and tag into the blob. */
export function encodeWrappedDek(
  header: Buffer,
  iv: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
): Buffer {
  if (iv.length !== headerIvBytes(header) || tag.length !== WRAP_LIMITS.tagBytes)
    throw new RangeError('bad IV or tag size');
  return Buffer.concat([header, iv, ciphertext, tag]);
}

/** Parses an untrusted blob; any structural problem is UNPROCESSABLE_CIPHERTEXT_ERR. */
export function decodeWrappedDek(input: Uint8Array): WrappedDek {
  const buf = Buffer.isBuffer(input) ? input : Buffer.from(input.buffer, input.byteOffset, input.length);
  const r = new ByteReader(buf);
  if (!r.bytes(2).equals(WRAP_MAGIC)) malformed('magic');
  const format = r.u8();
  if (format !== WRAP_FORMAT_V1 && format !== WRAP_FORMAT_V2) malformed('format version');
  const vLen = r.u8();
  if (vLen === 0 || vLen > WRAP_LIMITS.maxVersionIdBytes) malformed('version id length');
  const keyVersionId = r.bytes(vLen).toString('latin1');
  if (!isValidKeyVersionId(keyVersionId)) malformed('version id');
  let ivBytes: number = WRAP_LIMITS.ivBytes;
  if (format === WRAP_FORMAT_V2) {
    ivBytes = r.u8();
    // Format 2 exists for other lengths: a 12-byte IV is always written as format 1.
    if (ivBytes === WRAP_LIMITS.ivBytes || !WRAP_LIMITS.ivLengths.includes(ivBytes)) malformed('IV length');
  }
  const header = buf.subarray(0, r.offset);
  const iv = r.bytes(ivBytes);
  const bodyLen = r.remaining - WRAP_LIMITS.tagBytes;
  if (bodyLen < 1 || bodyLen > WRAP_LIMITS.maxPlaintextBytes) malformed('ciphertext length');
  const ciphertext = r.bytes(bodyLen);
  const tag = r.bytes(WRAP_LIMITS.tagBytes);
  return { keyVersionId, iv, ciphertext, tag, header };
}

/**
 * The AES-GCM AAD of a wrapped DEK: header || lp16(instance) || lp16(crkId) || u16(count) || lp16(aad_i)…
 * (lp16 = 2-byte big-endian length, then UTF-8 bytes). Unambiguous, so no two inputs collide.
 */
export function wrapAad(header: Buffer, instance: string, crkId: string, aad: readonly string[]): Buffer {
  if (aad.length > WRAP_LIMITS.maxAadStrings) throw new RangeError('too many aad strings');
  const parts: Buffer[] = [header, lp16(instance), lp16(crkId)];
  const count = Buffer.alloc(2);
  count.writeUInt16BE(aad.length);
  parts.push(count);
  for (const a of aad) parts.push(lp16(a));
  return Buffer.concat(parts);
}

function lp16(s: string): Buffer {
  const b = Buffer.from(s, 'utf8');
  if (b.length > WRAP_LIMITS.maxAadStringBytes) throw new RangeError('aad string too long');
  const out = Buffer.alloc(2 + b.length);
  out.writeUInt16BE(b.length);
  b.copy(out, 2);
  return out;
}
