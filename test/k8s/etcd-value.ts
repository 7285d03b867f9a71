/**
 * Decoding of the values kube-apiserver stores in etcd under KMS v2, so a test can check what the
 * plugin's ciphertext and key id look like at rest.
 */

/** Fields of a stored KMS v2 `EncryptedObject` (kmsv2/v2/api.proto) that a test looks at. */
export interface EncryptedObject {
  readonly keyId: string;
  /** The plugin's ciphertext of the apiserver's seed (field 3). */
  readonly encryptedDEKSource: Buffer;
  readonly annotations: Record<string, string>;
  readonly type: number;
}

/** Decodes the protobuf after `k8s:enc:kms:v2:<name>:`; throws on anything malformed. */
export function decodeEncryptedObject(buf: Buffer): EncryptedObject {
  let pos = 0;
  const varint = (): number => {
    let out = 0;
    let mul = 1;
    for (;;) {
      const b = buf[pos++];
      if (b === undefined) throw new Error('truncated varint');
      out += (b & 0x7f) * mul;
      if (b < 0x80) return out;
      mul *= 128;
    }
  };
  const bytes = (): Buffer => {
    const len = varint();
    if (pos + len > buf.length) throw new Error('truncated field');
    const out = buf.subarray(pos, pos + len);
    pos += len;
    return out;
  };
  let keyId = '';
  let dek: Buffer = Buffer.alloc(0);
  let type = 0;
  const annotations: Record<string, string> = {};
  while (pos < buf.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) {
      const v = varint();
      if (field === 5) type = v;
    } else if (wire === 2) {
      const b = bytes();
      if (field === 2) keyId = b.toString('utf8');
      else if (field === 3) dek = b;
      else if (field === 4) {
        // map<string, bytes> entry: 1 key, 2 value
        const entry = decodeEntry(b);
        annotations[entry.key] = entry.value;
      }
    } else {
      throw new Error(`unexpected wire type ${wire}`);
    }
  }
  return { keyId, encryptedDEKSource: dek, annotations, type };
}

function decodeEntry(b: Buffer): { key: string; value: string } {
  let key = '';
  let value = '';
  let pos = 0;
  while (pos < b.length) {
    const tag = b[pos++] ?? 0;
    const len = b[pos++] ?? 0; // annotations here are short (< 128 bytes)
    const v = b.subarray(pos, pos + len);
    pos += len;
    if (tag >> 3 === 1) key = v.toString('utf8');
    else value = v.toString('base64');
  }
  return { key, value };
}
