import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { aes256GcmDecrypt, aes256GcmEncrypt } from '../crypto/aes-gcm.js';
import { seededRandom } from '../crypto/random.js';
import { deriveDataKey, openShim, sealShim } from '../crypto/shim-envelope.js';
import { decodeShimCiphertext, SHIM_LIMITS, ShimAlg } from './shim-ciphertext.js';
import { decodeWrappedDek, encodeWrapHeader, encodeWrappedDek, wrapAad } from './wrapped-dek.js';

/**
 * Golden vectors pin the byte layouts of docs/formats.md: the same inputs must give the same
 * bytes in every release, and committed bytes must always decode. To add a vector, add a case
 * and run the tests once with KEYGATE_UPDATE_GOLDEN=1; never regenerate existing ones.
 */
const dir = new URL('../../test-vectors/', import.meta.url);
const update = process.env.KEYGATE_UPDATE_GOLDEN === '1';

interface ShimCase {
  name: string;
  alg: ShimAlg;
  keyId: string;
  plaintextLen: number;
  wrappedLen: number;
}
const SHIM_CASES: ShimCase[] = [
  {
    name: 'v2-seed-a256cbc-hs512',
    alg: ShimAlg.A256CBC_HS512,
    keyId: 'keygate/inst-1/crk-1/3f6c1a',
    plaintextLen: 32,
    wrappedLen: 75,
  },
  {
    name: 'v2-seed-a256gcm',
    alg: ShimAlg.A256GCM,
    keyId: 'keygate/inst-1/crk-1/3f6c1a',
    plaintextLen: 32,
    wrappedLen: 75,
  },
  { name: 'empty-plaintext-cbc', alg: ShimAlg.A256CBC_HS512, keyId: 'k', plaintextLen: 0, wrappedLen: 1 },
  {
    name: 'v1-large-cbc',
    alg: ShimAlg.A256CBC_HS512,
    keyId: 'keygate/x/y/z',
    plaintextLen: 1000,
    wrappedLen: 300,
  },
];

interface ShimVector {
  name: string;
  alg: number;
  keyId: string;
  dek: string;
  wrappedDek: string;
  plaintext: string;
  ciphertext: string;
}

function buildShim(c: ShimCase): ShimVector {
  const rnd = seededRandom(`golden:${c.name}`);
  const dek = rnd(32);
  const wrappedDek = rnd(c.wrappedLen);
  const plaintext = rnd(c.plaintextLen);
  const ciphertext = sealShim({
    alg: c.alg,
    keyId: c.keyId,
    wrappedDek,
    dataKey: deriveDataKey(dek, c.alg),
    plaintext,
    random: rnd,
    maxBytes: SHIM_LIMITS.v1MaxCiphertextBytes,
  });
  const h = (b: Buffer) => b.toString('hex');
  return {
    name: c.name,
    alg: c.alg,
    keyId: c.keyId,
    dek: h(dek),
    wrappedDek: h(wrappedDek),
    plaintext: h(plaintext),
    ciphertext: h(ciphertext),
  };
}

interface WrapVector {
  name: string;
  keyVersionId: string;
  instance: string;
  crkId: string;
  aad: string[];
  key: string;
  dek: string;
  blob: string;
}
const WRAP_CASES = [
  {
    name: 'dek32-two-aad',
    keyVersionId: '8d0f6f3e-0d1c-4e4b-9b7a-2f1e5c3d9a10',
    instance: 'team-a',
    crkId: 'crk-1',
    aad: ['keygate-shim', 'crk-1'],
  },
  { name: 'dek32-no-aad', keyVersionId: 'v1', instance: 'i', crkId: 'k', aad: [] as string[] },
];

function buildWrap(c: (typeof WRAP_CASES)[number]): WrapVector {
  const rnd = seededRandom(`golden:${c.name}`);
  const key = rnd(32);
  const dek = rnd(32);
  const iv = rnd(12);
  const header = encodeWrapHeader(c.keyVersionId);
  const sealed = aes256GcmEncrypt(key, iv, dek, wrapAad(header, c.instance, c.crkId, c.aad));
  const blob = encodeWrappedDek(header, iv, sealed.ciphertext, sealed.tag);
  return { ...c, key: key.toString('hex'), dek: dek.toString('hex'), blob: blob.toString('hex') };
}

/** Format 2: a 16-byte IV, as a Luna HSM in FIPS mode generates and appends it. */
const WRAP_V2_CASES = [
  {
    name: 'dek32-iv16-two-aad',
    keyVersionId: '3c6a1f7e-95b2-4d0e-8f61-7a2b9c4d5e60',
    instance: 'team-b',
    crkId: 'crk-fips',
    aad: ['keygate-shim', 'crk-fips'],
  },
  { name: 'dek32-iv16-no-aad', keyVersionId: 'v7', instance: 'i', crkId: 'k', aad: [] as string[] },
];

/** AES-256-GCM with any IV length (the format test needs 16; keygate's own code uses 12). */
function gcmAnyIv(key: Buffer, iv: Buffer, pt: Buffer, aad: Buffer): { ciphertext: Buffer; tag: Buffer } {
  const c = createCipheriv('aes-256-gcm', key, iv, { authTagLength: 16 });
  c.setAAD(aad);
  const ciphertext = Buffer.concat([c.update(pt), c.final()]);
  return { ciphertext, tag: c.getAuthTag() };
}

function buildWrapV2(c: (typeof WRAP_V2_CASES)[number]): WrapVector {
  const rnd = seededRandom(`golden:${c.name}`);
  const key = rnd(32);
  const dek = rnd(32);
  const iv = rnd(16);
  const header = encodeWrapHeader(c.keyVersionId, 16);
  const sealed = gcmAnyIv(key, iv, dek, wrapAad(header, c.instance, c.crkId, c.aad));
  const blob = encodeWrappedDek(header, iv, sealed.ciphertext, sealed.tag);
  return { ...c, key: key.toString('hex'), dek: dek.toString('hex'), blob: blob.toString('hex') };
}

function golden<T>(file: string, built: T[]): T[] {
  const url = new URL(file, dir);
  if (update || !existsSync(url)) {
    assert.ok(update, `${file} is missing: run the tests with KEYGATE_UPDATE_GOLDEN=1 once`);
    writeFileSync(url, `${JSON.stringify(built, null, 2)}\n`);
  }
  return JSON.parse(readFileSync(url, 'utf8')) as T[];
}

describe('golden vectors', () => {
  it('shim ciphertext v1: the same inputs give the committed bytes, and the bytes open', () => {
    const built = SHIM_CASES.map(buildShim);
    const committed = golden<ShimVector>('shim-ciphertext-v1.json', built);
    assert.equal(committed.length, SHIM_CASES.length);
    for (const [i, v] of committed.entries()) {
      assert.deepEqual(built[i], v, `vector ${v.name} changed: the format must not change silently`);
      const parsed = decodeShimCiphertext(Buffer.from(v.ciphertext, 'hex'));
      assert.equal(parsed.keyId, v.keyId);
      assert.equal(parsed.alg, v.alg);
      assert.equal(parsed.wrappedDek.toString('hex'), v.wrappedDek);
      const pt = openShim(parsed, deriveDataKey(Buffer.from(v.dek, 'hex'), parsed.alg));
      assert.equal(pt.toString('hex'), v.plaintext);
    }
  });

  it('wrapped DEK v1: the same inputs give the committed bytes, and the bytes unwrap', () => {
    const built = WRAP_CASES.map(buildWrap);
    const committed = golden<WrapVector>('wrapped-dek-v1.json', built);
    assert.equal(committed.length, WRAP_CASES.length);
    for (const [i, v] of committed.entries()) {
      assert.deepEqual(built[i], v, `vector ${v.name} changed: the format must not change silently`);
      const blob = decodeWrappedDek(Buffer.from(v.blob, 'hex'));
      assert.equal(blob.keyVersionId, v.keyVersionId);
      const aad = wrapAad(blob.header, v.instance, v.crkId, v.aad);
      const dek = aes256GcmDecrypt(Buffer.from(v.key, 'hex'), blob.iv, blob.ciphertext, aad, blob.tag);
      assert.equal(dek.toString('hex'), v.dek);
    }
  });

  it('wrapped DEK v2 (16-byte IV): the same inputs give the committed bytes, and the bytes unwrap', () => {
    const built = WRAP_V2_CASES.map(buildWrapV2);
    const committed = golden<WrapVector>('wrapped-dek-v2.json', built);
    assert.equal(committed.length, WRAP_V2_CASES.length);
    for (const [i, v] of committed.entries()) {
      assert.deepEqual(built[i], v, `vector ${v.name} changed: the format must not change silently`);
      const bytes = Buffer.from(v.blob, 'hex');
      assert.equal(bytes[2], 0x02, 'format 2');
      const blob = decodeWrappedDek(bytes);
      assert.equal(blob.keyVersionId, v.keyVersionId);
      assert.equal(blob.iv.length, 16);
      const aad = wrapAad(blob.header, v.instance, v.crkId, v.aad);
      const d = createDecipheriv('aes-256-gcm', Buffer.from(v.key, 'hex'), blob.iv, { authTagLength: 16 });
      d.setAAD(aad);
      d.setAuthTag(blob.tag);
      assert.equal(Buffer.concat([d.update(blob.ciphertext), d.final()]).toString('hex'), v.dek);
    }
  });
});
