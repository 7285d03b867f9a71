/**
 * Protobuf wire format (proto3), only what the KMS messages need: varint tags and lengths,
 * length-delimited strings, bytes and nested messages, and skipping of unknown fields (wire types
 * 0, 1, 2 and 5) so that a newer kube-apiserver's extra fields are ignored like protobuf does.
 * Groups (3, 4), wire types 6 and 7, field number 0, truncated or over-long varints and lengths
 * past the end are refused with a MalformedMessage error.
 */

/** The bytes are not a valid protobuf message of the expected type. */
export class MalformedMessage extends Error {
  override readonly name = 'MalformedMessage';
}

export const WIRE_VARINT = 0;
export const WIRE_I64 = 1;
export const WIRE_LEN = 2;
export const WIRE_I32 = 5;

const EMPTY: Buffer = Buffer.alloc(0);

/** A cursor over one message (or one nested message: `end` is its end). */
export class WireReader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    pos = 0,
    readonly end = buf.length,
  ) {
    this.pos = pos;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  /** A tag: (field number << 3) | wire type, a uint32 varint; field number 0 is invalid. */
  tag(): number {
    const t = this.uint32();
    if (t >>> 3 === 0) throw new MalformedMessage('field number 0');
    return t;
  }

  /** A varint read as uint32 (lengths and tags); more than 5 bytes, or above 2^32-1, is refused. */
  uint32(): number {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      if (this.pos >= this.end) throw new MalformedMessage('truncated varint');
      const b = this.buf[this.pos++] as number;
      if (shift === 28 && b > 0x0f) throw new MalformedMessage('varint above 32 bits');
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
    throw new MalformedMessage('varint too long');
  }

  /** The start and end of a length-delimited field's payload; the cursor moves past it. */
  span(): [number, number] {
    const len = this.uint32();
    const start = this.pos;
    if (len > this.end - start) throw new MalformedMessage('length past the end');
    this.pos = start + len;
    return [start, start + len];
  }

  /** A bytes field: a view into the message buffer (like protobufjs on Node), not a copy. */
  bytes(): Buffer {
    const [s, e] = this.span();
    return s === e ? EMPTY : this.buf.subarray(s, e);
  }

  /** A string field, decoded as UTF-8 (invalid sequences become U+FFFD, like protobufjs). */
  string(): string {
    const [s, e] = this.span();
    return s === e ? '' : this.buf.toString('utf8', s, e);
  }

  /** Skips a field of wire type `wt` (0, 1, 2 or 5); any other wire type is refused. */
  skip(wt: number): void {
    switch (wt) {
      case WIRE_VARINT:
        for (let n = 0; ; n++) {
          if (n >= 10) throw new MalformedMessage('varint too long');
          if (this.pos >= this.end) throw new MalformedMessage('truncated varint');
          if ((this.buf[this.pos++] as number) < 0x80) break;
        }
        return;
      case WIRE_I64:
        this.advance(8);
        return;
      case WIRE_LEN:
        this.span();
        return;
      case WIRE_I32:
        this.advance(4);
        return;
      default:
        throw new MalformedMessage(`unsupported wire type ${wt}`);
    }
  }

  private advance(n: number): void {
    if (this.end - this.pos < n) throw new MalformedMessage('truncated fixed-size field');
    this.pos += n;
  }
}

/** Encoded size of a uint32 varint. */
export function varintSize(v: number): number {
  return v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5;
}

/** Size of a length-delimited field with a one-byte tag (field numbers 1..15) and `len` payload bytes. */
export function lenFieldSize(len: number): number {
  return 1 + varintSize(len) + len;
}

/** A writer into a buffer of the exact size computed beforehand. */
export class WireWriter {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  uint32(v: number): void {
    let x = v;
    while (x >= 0x80) {
      this.buf[this.pos++] = (x & 0x7f) | 0x80;
      x = Math.floor(x / 128);
    }
    this.buf[this.pos++] = x;
  }

  /** Tag and length of a length-delimited field (field numbers 1..15). */
  header(field: number, len: number): void {
    this.buf[this.pos++] = (field << 3) | WIRE_LEN;
    this.uint32(len);
  }

  bytes(field: number, b: Uint8Array): void {
    this.header(field, b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A string whose UTF-8 length `len` the caller computed already (for the size). */
  string(field: number, s: string, len: number): void {
    this.header(field, len);
    this.pos += this.buf.write(s, this.pos, len, 'utf8');
  }
}
