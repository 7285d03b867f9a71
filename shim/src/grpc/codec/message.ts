import { lenFieldSize, WIRE_LEN, WireReader, WireWriter } from './wire.js';

/** The proto3 field kinds the KMS messages use: string, bytes and map<string, bytes>. */
export type FieldKind = 'string' | 'bytes' | 'map';

export interface FieldSpec {
  readonly no: number;
  readonly name: string;
  readonly kind: FieldKind;
}

/** A map<string, bytes> as decoded: a plain object (a "__proto__" key is an own key, never the prototype). */
export type BytesMap = Record<string, Buffer>;
export type FieldValue = string | Buffer | BytesMap;

/**
 * A message codec built from its field list (shim/proto/*.proto). Decoded objects carry every
 * field, with the proto3 default when absent ('' / empty Buffer / {}), like @grpc/proto-loader with
 * `defaults: true, keepCase: true`. Encoding omits default values, as protobuf does.
 */
export interface MessageCodec<T> {
  readonly name: string;
  readonly fields: readonly FieldSpec[];
  decode(buf: Buffer): T;
  encode(msg: Partial<T>): Buffer;
}

const EMPTY: Buffer = Buffer.alloc(0);

export function messageCodec<T>(name: string, fields: readonly FieldSpec[]): MessageCodec<T> {
  for (const f of fields) if (f.no < 1 || f.no > 15) throw new Error(`${name}.${f.name}: field number`);
  const byNo: (FieldSpec | undefined)[] = [];
  for (const f of fields) byNo[f.no] = f;

  const defaults = (): Record<string, FieldValue> => {
    const m: Record<string, FieldValue> = {};
    for (const f of fields) m[f.name] = f.kind === 'string' ? '' : f.kind === 'bytes' ? EMPTY : newMap();
    return m;
  };

  return {
    name,
    fields,
    decode(buf: Buffer): T {
      const m = defaults();
      const r = new WireReader(buf);
      while (!r.done) {
        const t = r.tag();
        const wt = t & 7;
        const f = byNo[t >>> 3];
        // A known field with another wire type is an unknown field to protobuf: skipped.
        if (f === undefined || wt !== WIRE_LEN) {
          r.skip(wt);
        } else if (f.kind === 'string') {
          m[f.name] = r.string();
        } else if (f.kind === 'bytes') {
          m[f.name] = r.bytes();
        } else {
          readMapEntry(r, m[f.name] as BytesMap);
        }
      }
      return m as T;
    },
    encode(msg: Partial<T>): Buffer {
      const src = msg as Record<string, unknown>;
      let size = 0;
      const lens: number[] = [];
      for (const f of fields) {
        const v = src[f.name];
        if (v === undefined || v === null) continue;
        if (f.kind === 'string') {
          const len = Buffer.byteLength(asString(name, f, v), 'utf8');
          lens.push(len);
          if (len > 0) size += lenFieldSize(len);
        } else if (f.kind === 'bytes') {
          const len = asBytes(name, f, v).length;
          if (len > 0) size += lenFieldSize(len);
        } else {
          for (const [k, b] of mapEntries(name, f, v)) {
            const kl = Buffer.byteLength(k, 'utf8');
            lens.push(kl);
            size += lenFieldSize(lenFieldSize(kl) + lenFieldSize(b.length));
          }
        }
      }
      const w = new WireWriter(Buffer.allocUnsafe(size));
      let li = 0;
      for (const f of fields) {
        const v = src[f.name];
        if (v === undefined || v === null) continue;
        if (f.kind === 'string') {
          const len = lens[li++] as number;
          if (len > 0) w.string(f.no, v as string, len);
        } else if (f.kind === 'bytes') {
          if ((v as Uint8Array).length > 0) w.bytes(f.no, v as Uint8Array);
        } else {
          // Map entries carry key and value even when empty, as the Go and C++ runtimes write them.
          for (const [k, b] of mapEntries(name, f, v)) {
            const kl = lens[li++] as number;
            w.header(f.no, lenFieldSize(kl) + lenFieldSize(b.length));
            w.string(1, k, kl);
            w.bytes(2, b);
          }
        }
      }
      if (w.pos !== size) throw new Error(`${name}: encoded ${w.pos} bytes, expected ${size}`);
      return w.buf;
    },
  };
}

function newMap(): BytesMap {
  return {};
}

/** One map<string, bytes> entry (key = 1, value = 2; either may be absent; the last key wins). */
function readMapEntry(r: WireReader, into: BytesMap): void {
  const [start, end] = r.span();
  const e = new WireReader(r.buf, start, end);
  let key = '';
  let value: Buffer = EMPTY;
  while (!e.done) {
    const t = e.tag();
    const wt = t & 7;
    const no = t >>> 3;
    if (wt === WIRE_LEN && no === 1) key = e.string();
    else if (wt === WIRE_LEN && no === 2) value = e.bytes();
    else e.skip(wt);
  }
  if (key === '__proto__') {
    Object.defineProperty(into, key, { value, enumerable: true, writable: true, configurable: true });
  } else {
    into[key] = value;
  }
}

function asString(msg: string, f: FieldSpec, v: unknown): string {
  if (typeof v !== 'string') throw new TypeError(`${msg}.${f.name}: expected a string`);
  return v;
}

function asBytes(msg: string, f: FieldSpec, v: unknown): Uint8Array {
  if (!(v instanceof Uint8Array)) throw new TypeError(`${msg}.${f.name}: expected bytes`);
  return v;
}

function mapEntries(msg: string, f: FieldSpec, v: unknown): [string, Uint8Array][] {
  if (typeof v !== 'object' || v === null) throw new TypeError(`${msg}.${f.name}: expected a map`);
  const out: [string, Uint8Array][] = [];
  for (const k of Object.keys(v)) out.push([k, asBytes(msg, f, (v as Record<string, unknown>)[k])]);
  return out;
}
