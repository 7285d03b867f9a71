import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { aes256GcmDecrypt } from '../crypto/aes-gcm.js';
import { deriveDataKey, openShim, sealShim } from '../crypto/shim-envelope.js';
import { isKeygateError, KeygateError } from '../errors/index.js';
import { decodeShimCiphertext, SHIM_LIMITS, ShimAlg } from './shim-ciphertext.js';
import { decodeWrappedDek, encodeWrapHeader, encodeWrappedDek, wrapAad } from './wrapped-dek.js';

/**
 * Every valid value round trips; every truncation, extension and single-bit flip of a valid
 * ciphertext is rejected with our typed error (never accepted, never another exception). The
 * decrypting side is given the right key whatever the mutation did to the header: the strongest
 * adversary, so only the format and the AEAD stand between a mutation and a wrong plaintext.
 */
const RUNS = { roundTrip: 2_000, mutation: 10_000, wrapMutation: 4_000, garbage: 4_000 };

const bytes = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((u) => Buffer.from(u));

const shimValue = fc.record({
  alg: fc.constantFrom(ShimAlg.A256CBC_HS512, ShimAlg.A256GCM),
  keyId: fc
    .string({ minLength: 1, maxLength: 60 })
    .filter((s) => Buffer.byteLength(s) <= 255 && Buffer.from(s, 'utf8').toString('utf8') === s),
  wrappedDek: bytes(1, 200),
  plaintext: bytes(0, 300),
  dek: bytes(32, 32),
  iv: bytes(16, 16),
});
type ShimValue = typeof shimValue extends fc.Arbitrary<infer T> ? T : never;

function seal(v: ShimValue): Buffer {
  return sealShim({
    alg: v.alg,
    keyId: v.keyId,
    wrappedDek: v.wrappedDek,
    dataKey: deriveDataKey(v.dek, v.alg),
    plaintext: v.plaintext,
    random: (n) => v.iv.subarray(0, n),
    maxBytes: SHIM_LIMITS.v1MaxCiphertextBytes,
  });
}

function openWith(dek: Buffer, bytes: Buffer): Buffer {
  const parsed = decodeShimCiphertext(bytes);
  return openShim(parsed, deriveDataKey(dek, parsed.alg));
}

type Mutation =
  | { kind: 'truncate'; at: number }
  | { kind: 'extend'; extra: Buffer }
  | { kind: 'flip'; bit: number };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('extend' as const), extra: bytes(1, 32) }),
  fc.record({ kind: fc.constant('flip' as const), bit: fc.nat() }),
);

function mutate(ct: Buffer, m: Mutation): Buffer {
  switch (m.kind) {
    case 'truncate':
      return ct.subarray(0, m.at % ct.length);
    case 'extend':
      return Buffer.concat([ct, m.extra]);
    case 'flip': {
      const out = Buffer.from(ct);
      const bit = m.bit % (ct.length * 8);
      out[bit >> 3] = (out[bit >> 3] as number) ^ (1 << (bit & 7));
      return out;
    }
  }
}

function rejectedTyped(fn: () => unknown): boolean {
  try {
    fn();
    return false;
  } catch (err) {
    return isKeygateError(err) && err.code === 'UNPROCESSABLE_CIPHERTEXT_ERR';
  }
}

describe('shim ciphertext properties', () => {
  it(`round trips every valid value (${RUNS.roundTrip} cases)`, () => {
    fc.assert(
      fc.property(shimValue, (v) => {
        const ct = seal(v);
        const parsed = decodeShimCiphertext(ct);
        assert.equal(parsed.keyId, v.keyId);
        assert.ok(parsed.wrappedDek.equals(v.wrappedDek));
        assert.ok(openWith(v.dek, ct).equals(v.plaintext));
      }),
      { numRuns: RUNS.roundTrip },
    );
  });

  it(`rejects every truncation, extension and bit flip with UNPROCESSABLE_CIPHERTEXT_ERR (${RUNS.mutation} cases)`, () => {
    fc.assert(
      fc.property(shimValue, mutation, (v, m) => rejectedTyped(() => openWith(v.dek, mutate(seal(v), m)))),
      { numRuns: RUNS.mutation },
    );
  });

  it(`rejects random bytes with the typed error only (${RUNS.garbage} cases)`, () => {
    fc.assert(
      fc.property(bytes(0, 400), bytes(32, 32), (junk, dek) => rejectedTyped(() => openWith(dek, junk))),
      { numRuns: RUNS.garbage },
    );
  });

  it('keeps v2 seeds far below the 1024-byte limit and refuses to exceed a limit', () => {
    const v: ShimValue = {
      alg: ShimAlg.A256CBC_HS512,
      keyId: 'k'.repeat(255),
      wrappedDek: Buffer.alloc(200, 1),
      plaintext: Buffer.alloc(32, 2),
      dek: Buffer.alloc(32, 3),
      iv: Buffer.alloc(16, 4),
    };
    assert.ok(seal(v).length <= SHIM_LIMITS.v2MaxCiphertextBytes);
    assert.throws(
      () =>
        sealShim({
          ...v,
          dataKey: deriveDataKey(v.dek, v.alg),
          random: (n) => Buffer.alloc(n),
          maxBytes: SHIM_LIMITS.v2MaxCiphertextBytes,
          plaintext: Buffer.alloc(900),
        }),
      (e: unknown) => isKeygateError(e) && e.code === 'CIPHERTEXT_TOO_LARGE_ERR',
    );
  });
});

describe('wrapped DEK properties', () => {
  const wrapValue = fc.record({
    versionId: fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/),
    instance: fc.string({ maxLength: 40 }),
    crkId: fc.string({ maxLength: 40 }),
    aad: fc.array(fc.string({ maxLength: 30 }), { maxLength: 4 }),
    key: bytes(32, 32),
    // Format 1 (12-byte IV) and format 2 (16-byte IV, as a Luna HSM in FIPS mode makes them).
    iv: fc.oneof(bytes(12, 12), bytes(16, 16)),
    dek: bytes(1, 64),
  });
  type WrapValue = typeof wrapValue extends fc.Arbitrary<infer T> ? T : never;
  const wrap = (v: WrapValue) => {
    const header = encodeWrapHeader(v.versionId, v.iv.length);
    const c = createCipheriv('aes-256-gcm', v.key, v.iv, { authTagLength: 16 });
    c.setAAD(wrapAad(header, v.instance, v.crkId, v.aad));
    const ciphertext = Buffer.concat([c.update(v.dek), c.final()]);
    return encodeWrappedDek(header, v.iv, ciphertext, c.getAuthTag());
  };
  const unwrap = (v: WrapValue, blob: Buffer) => {
    const b = decodeWrappedDek(blob);
    if (b.iv.length === 12) {
      return aes256GcmDecrypt(
        v.key,
        b.iv,
        b.ciphertext,
        wrapAad(b.header, v.instance, v.crkId, v.aad),
        b.tag,
      );
    }
    // What the HSM does with a format 2 blob: any failure is a typed refusal.
    try {
      const d = createDecipheriv('aes-256-gcm', v.key, b.iv, { authTagLength: 16 });
      d.setAAD(wrapAad(b.header, v.instance, v.crkId, v.aad));
      d.setAuthTag(b.tag);
      return Buffer.concat([d.update(b.ciphertext), d.final()]);
    } catch (cause) {
      throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { cause });
    }
  };

  it('round trips and binds instance, CRK and aad', () => {
    fc.assert(
      fc.property(wrapValue, (v) => {
        const blob = wrap(v);
        assert.ok(unwrap(v, blob).equals(v.dek));
        assert.equal(decodeWrappedDek(blob).keyVersionId, v.versionId);
        assert.ok(rejectedTyped(() => unwrap({ ...v, instance: `${v.instance}x` }, blob)));
        assert.ok(rejectedTyped(() => unwrap({ ...v, crkId: `${v.crkId}x` }, blob)));
        assert.ok(rejectedTyped(() => unwrap({ ...v, aad: [...v.aad, ''] }, blob)));
      }),
      { numRuns: 1_000 },
    );
  });

  it(`rejects every truncation, extension and bit flip (${RUNS.wrapMutation} cases)`, () => {
    fc.assert(
      fc.property(wrapValue, mutation, (v, m) => rejectedTyped(() => unwrap(v, mutate(wrap(v), m)))),
      { numRuns: RUNS.wrapMutation },
    );
  });
});
