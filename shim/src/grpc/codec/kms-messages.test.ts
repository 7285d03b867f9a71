import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import protobuf from 'protobufjs';
import { ALL_MESSAGES, V1BETA1, V2 } from './kms-messages.js';
import type { FieldSpec, MessageCodec } from './message.js';
import { MalformedMessage } from './wire.js';

/**
 * Conformance of the static codecs with protobufjs loading shim/proto/*.proto (the reference; a
 * dev dependency used only here): each decodes what the other encodes, for random and edge-case
 * messages; unknown fields are skipped; malformed bytes are refused with MalformedMessage.
 */
const PROTO = fileURLToPath(new URL('../../../proto/', import.meta.url));
const root = new protobuf.Root();
root.loadSync([`${PROTO}v2/api.proto`, `${PROTO}v1beta1/api.proto`], { keepCase: true });
const ref = (c: MessageCodec<unknown>): protobuf.Type => root.lookupType(c.name);

type Plain = Record<string, string | Record<string, string>>;

/** A comparable form: bytes as hex, maps as objects of hex, every field present. */
function plain(fields: readonly FieldSpec[], m: Record<string, unknown>): Plain {
  const out: Plain = {};
  for (const f of fields) {
    const v = m[f.name];
    if (f.kind === 'string') out[f.name] = (v as string | undefined) ?? '';
    else if (f.kind === 'bytes')
      out[f.name] = Buffer.from((v as Uint8Array | undefined) ?? []).toString('hex');
    else {
      const map: Record<string, string> = {};
      for (const [k, b] of Object.entries((v as Record<string, Uint8Array> | undefined) ?? {}))
        map[k] = Buffer.from(b).toString('hex');
      out[f.name] = map;
    }
  }
  return out;
}

const text = fc.oneof(
  fc.constant(''),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom('日本語', 'Grüße', '🔐🗝️', '__proto__', 'constructor', 'a'.repeat(300)),
);
const bytes = fc.oneof(
  fc.constant(Buffer.alloc(0)),
  fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)),
  fc.integer({ min: 1, max: 70_000 }).map((n) => Buffer.alloc(n, n & 0xff)),
);
const bytesMap = fc.dictionary(text, bytes, { maxKeys: 5 });

function arbitrary(c: MessageCodec<unknown>): fc.Arbitrary<Record<string, unknown>> {
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const f of c.fields)
    shape[f.name] = f.kind === 'string' ? text : f.kind === 'bytes' ? bytes : bytesMap;
  return fc.record(shape);
}

/** Unknown fields of every skippable wire type, with field numbers no KMS message uses. */
function unknownFields(): Buffer {
  return Buffer.concat([
    Buffer.from([0x80, 0x01, 0x96, 0x01]), // field 16, varint 150
    Buffer.from([0xf8, 0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), // 31, 10-byte varint
    Buffer.from([0x89, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]), // field 17, fixed64
    Buffer.from([0x92, 0x01, 0x03, 0x61, 0x62, 0x63]), // field 18, length-delimited "abc"
    Buffer.from([0x9d, 0x01, 1, 2, 3, 4]), // field 19, fixed32
    Buffer.from([0xaa, 0x80, 0x80, 0x80, 0x01, 0x00]), // field 2^25+5, empty length-delimited
  ]);
}

describe('static KMS protobuf codecs against protobufjs', () => {
  for (const c of ALL_MESSAGES) {
    const t = ref(c);
    it(`${c.name}: same fields as the .proto`, () => {
      const mine = c.fields.map((f) => `${f.no}:${f.name}:${f.kind}`);
      const theirs = t.fieldsArray.map(
        (f) => `${f.id}:${f.name}:${f.map ? 'map' : f.type === 'string' ? 'string' : f.type}`,
      );
      assert.deepEqual(mine, theirs);
      for (const f of t.fieldsArray) if (f instanceof protobuf.MapField) assert.equal(f.keyType, 'string');
    });

    it(`${c.name}: each decodes what the other encodes`, () => {
      fc.assert(
        fc.property(arbitrary(c), (m) => {
          const want = plain(c.fields, m);
          const theirs = t.toObject(t.decode(c.encode(m)), { defaults: true }) as Record<string, unknown>;
          assert.deepEqual(plain(c.fields, theirs), want);
          const mine = c.decode(Buffer.from(t.encode(t.fromObject(m)).finish())) as Record<string, unknown>;
          assert.deepEqual(plain(c.fields, mine), want);
        }),
        { numRuns: 150 },
      );
    });

    it(`${c.name}: skips unknown fields anywhere, like protobufjs`, () => {
      fc.assert(
        fc.property(arbitrary(c), (m) => {
          const wire = Buffer.concat([unknownFields(), c.encode(m), unknownFields()]);
          const theirs = t.toObject(t.decode(wire), { defaults: true }) as Record<string, unknown>;
          assert.deepEqual(
            plain(c.fields, c.decode(wire) as Record<string, unknown>),
            plain(c.fields, theirs),
          );
        }),
        { numRuns: 30 },
      );
    });
  }

  it('decodes the empty message to the proto3 defaults, and encodes defaults to nothing', () => {
    const d = V2.DecryptRequest.decode(Buffer.alloc(0));
    assert.deepEqual(plain(V2.DecryptRequest.fields, d as never), {
      ciphertext: '',
      uid: '',
      key_id: '',
      annotations: {},
    });
    assert.equal(
      V2.EncryptResponse.encode({ ciphertext: Buffer.alloc(0), key_id: '', annotations: {} }).length,
      0,
    );
    assert.equal(V1BETA1.VersionRequest.encode({}).length, 0);
  });

  it('keeps a "__proto__" annotation as an own key, and the last of repeated keys and fields', () => {
    const t = ref(V2.DecryptRequest as MessageCodec<unknown>);
    const a = V2.DecryptRequest.encode({ uid: 'first', annotations: { __proto__x: Buffer.from('1') } });
    const entry = (k: string, v: string) => t.encode(t.fromObject({ annotations: { [k]: Buffer.from(v) } }));
    const wire = Buffer.concat([
      a,
      entry('__proto__', 'p').finish(),
      entry('k', 'old').finish(),
      entry('k', 'new').finish(),
      V2.DecryptRequest.encode({ uid: 'last' }),
    ]);
    const d = V2.DecryptRequest.decode(wire);
    assert.equal(Object.getPrototypeOf(d.annotations), Object.prototype);
    assert.deepEqual(Object.keys(d.annotations).sort(), ['__proto__', '__proto__x', 'k']);
    assert.equal(d.annotations.k?.toString(), 'new');
    assert.equal(d.uid, 'last');
  });

  it('treats a known field sent with another wire type as unknown (skipped), like protobuf-go', () => {
    const wire = Buffer.concat([Buffer.from([0x08, 0x05]), V2.EncryptRequest.encode({ uid: 'u' })]);
    const d = V2.EncryptRequest.decode(wire);
    assert.equal(d.plaintext.length, 0);
    assert.equal(d.uid, 'u');
  });

  it('refuses malformed bytes with MalformedMessage', () => {
    const bad: [string, number[]][] = [
      ['truncated tag', [0x80]],
      ['truncated varint value', [0x80, 0x01, 0x80]],
      ['field number 0', [0x02, 0x00]],
      ['length past the end', [0x0a, 0x05, 1, 2]],
      ['length varint truncated', [0x0a, 0xff]],
      ['group start (wire type 3)', [0x0b]],
      ['group end (wire type 4)', [0x0c]],
      ['wire type 6', [0x0e]],
      ['wire type 7', [0x0f]],
      ['fixed64 truncated', [0x89, 0x01, 1, 2, 3]],
      ['fixed32 truncated', [0x9d, 0x01, 1]],
      ['varint of 11 bytes', [0x80, 0x01, ...Array(10).fill(0xff), 0x01]],
      ['tag above 32 bits', [0xff, 0xff, 0xff, 0xff, 0x7f]],
      ['map entry past its length', [0x22, 0x03, 0x0a, 0x05, 0x61]],
      ['bad field inside a map entry', [0x22, 0x01, 0x0b]],
    ];
    for (const [what, b] of bad) {
      assert.throws(() => V2.DecryptRequest.decode(Buffer.from(b)), MalformedMessage, what);
    }
  });

  it('random bytes either decode or are refused with MalformedMessage, never another error', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (u) => {
        for (const c of ALL_MESSAGES) {
          try {
            c.decode(Buffer.from(u));
          } catch (err) {
            assert.ok(err instanceof MalformedMessage, String(err));
          }
        }
      }),
      { numRuns: 2000 },
    );
  });
});
