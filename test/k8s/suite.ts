/**
 * What both Kubernetes suites (one master: k8s.k8s-test.ts, three masters: ha.k8s-test.ts) share: the
 * Secrets they write and check (in kube-apiserver and raw in etcd), a bounded worker pool, GETs over
 * mutual TLS (the gateway's /metrics), and what a failed run keeps for diagnosis.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import type { Apiserver } from './apiserver.js';
import { dumpEtcd, type Etcd, etcdGet } from './etcd.js';
import { decodeEncryptedObject, type EncryptedObject } from './etcd-value.js';

export const NS = 'default';
export const PROVIDER_V2 = 'keygate';
export const PREFIX_V2 = `k8s:enc:kms:v2:${PROVIDER_V2}:`;
/** Sizes the suites cycle through: 1 B to 400 KB (kube-apiserver's limit for a Secret is 1 MiB). */
export const SIZES = [1, 17, 100, 512, 2048, 8192, 32_768, 131_072, 400_000, 3];

export interface SecretObject {
  metadata: { name: string; namespace?: string; resourceVersion?: string; [k: string]: unknown };
  data?: Record<string, string>;
  [k: string]: unknown;
}

export const log = (line: string): void => console.log(`k8s: ${line}`);
export const since = (t0: number): string => `${((Date.now() - t0) / 1000).toFixed(1)}s`;
export const secretPath = (name = ''): string => `/api/v1/namespaces/${NS}/secrets${name ? `/${name}` : ''}`;
export const etcdKey = (name: string): string => `/registry/secrets/${NS}/${name}`;

/** Runs `fn` over `items`, `n` at a time. */
export async function pool<T>(
  items: readonly T[],
  n: number,
  fn: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) await fn(items[i] as T, i);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/** GET over mutual TLS (the gateway's /metrics). */
export function mtlsGet(url: string, tls: { ca: string; cert: string; key: string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key), timeout: 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode === 200) resolve(text);
          else reject(new Error(`GET ${url}: HTTP ${res.statusCode}: ${text.slice(0, 200)}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}

interface Made {
  readonly data: Record<string, string>;
  /** Byte strings that must never appear in etcd. */
  readonly needles: readonly Buffer[];
}

/**
 * The Secrets a suite wrote, with what each must read back as and the plaintext that must never be in
 * etcd. Reads go through any kube-apiserver: a Secret written through one master is read through another.
 */
export class SecretBook {
  readonly #made = new Map<string, Made>();

  names(filter: (name: string) => boolean = () => true): string[] {
    return [...this.#made.keys()].filter(filter);
  }

  /** Creates Secret `name` of `size` random bytes (plus a marker) through `api`. */
  async create(api: Apiserver, name: string, size: number): Promise<void> {
    const marker = Buffer.from(`kg-plaintext-${name}-${randomBytes(8).toString('hex')}`);
    const blob = randomBytes(size);
    const data = { marker: marker.toString('base64'), blob: blob.toString('base64') };
    const needles = [marker, Buffer.from(data.marker), ...(size >= 16 ? [blob.subarray(0, 64)] : [])];
    await api.api.json('POST', secretPath(), {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name },
      type: 'Opaque',
      data,
    });
    this.#made.set(name, { data, needles });
  }

  /** Reads `name` through `api`; fails unless it equals what was written. */
  async readBack(api: Apiserver, name: string): Promise<void> {
    const want = this.#made.get(name);
    assert.ok(want, `unknown secret ${name}`);
    const got = await api.api.json<SecretObject>('GET', secretPath(name));
    assert.deepEqual(got.data, want.data, `secret ${name} read back differs`);
  }

  /** Raw etcd value of `name`: the v2 prefix, a decodable EncryptedObject with a key_id, no plaintext. */
  async rawV2(etcdUrl: string, name: string): Promise<EncryptedObject> {
    const raw = await etcdGet(etcdUrl, etcdKey(name));
    assert.ok(raw, `no etcd value for ${name}`);
    assert.equal(raw.subarray(0, PREFIX_V2.length).toString('latin1'), PREFIX_V2, `${name}: wrong prefix`);
    for (const needle of this.#made.get(name)?.needles ?? [])
      assert.ok(!raw.includes(needle), `${name}: plaintext found in etcd`);
    const obj = decodeEncryptedObject(raw.subarray(PREFIX_V2.length));
    assert.ok(obj.keyId.length > 0, `${name}: no keyID in the EncryptedObject`);
    return obj;
  }

  /** The plaintext needles of `name` (for checks of other stores, e.g. KMS v1). */
  needles(name: string): readonly Buffer[] {
    return this.#made.get(name)?.needles ?? [];
  }
}

/** SHA-256 (hex) of the apiserver seed an object was written with: its wrapped DEK source and key_id. */
export function seedOf(obj: EncryptedObject): string {
  return `${obj.keyId}|${createHash('sha256').update(obj.encryptedDEKSource).digest('hex')}`;
}

/**
 * SHA-256 (hex) of the gateway-wrapped DEK inside the shim ciphertext that is an object's
 * `encryptedDEKSource` (docs/formats.md: magic, version, algorithm, key_id, wrapped DEK, …): which of
 * the shims' DEKs a kube-apiserver needs to unwrap to read the object.
 */
export function shimDekOf(obj: EncryptedObject): string {
  const c = obj.encryptedDEKSource;
  assert.ok(c.length > 7 && c[0] === 0x6b && c[1] === 0x67, 'the seed is not a keygate shim ciphertext');
  const k = c[4] ?? 0;
  const w = c.readUInt16BE(5 + k);
  return createHash('sha256')
    .update(c.subarray(7 + k, 7 + k + w))
    .digest('hex');
}

/**
 * A suite's work folder and whether a case failed: `step` wraps a case body so that a failure is
 * noted; `keepEtcdIfFailed` dumps etcd beside the logs then; `finish` keeps the folder (named in the
 * output) when a case failed or KEYGATE_K8S_KEEP is set, else removes it.
 */
export class SuiteRun {
  failed = false;
  constructor(readonly work: string) {}

  step(fn: () => Promise<void>): () => Promise<void> {
    return async () => {
      try {
        await fn();
      } catch (err) {
        this.failed = true;
        throw err;
      }
    };
  }

  async keepEtcdIfFailed(etcd: Etcd | undefined): Promise<void> {
    if (this.failed && etcd && etcd.service.child.exitCode === null)
      await dumpEtcd(etcd.url, join(this.work, 'etcd-dump.jsonl')).catch((e: unknown) =>
        log(`etcd dump: ${e}`),
      );
  }

  finish(contents: string): void {
    if (this.failed || process.env.KEYGATE_K8S_KEEP) log(`kept ${this.work} (${contents})`);
    else rmSync(this.work, { recursive: true, force: true });
  }
}
