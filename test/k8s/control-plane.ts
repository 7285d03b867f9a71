/**
 * A real etcd and kube-apiserver for the Kubernetes suite: binaries built by test/k8s/tools/build.sh,
 * every listener on 127.0.0.1, every process stopped by its own PID (through processes.ts).
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { ensurePki } from '../support/dev-pki.js';
import { type Service, startService } from '../support/processes.js';

/** Repository root (this file is test/dist/k8s/control-plane.js once built). */
const REPO_ROOT = resolve(new URL('../../../', import.meta.url).pathname);
const TOOLS = join(REPO_ROOT, 'test/k8s/tools');

export interface Versions {
  readonly k8s: string;
  readonly etcd: string;
}

/** The versions build.sh builds (test/k8s/tools/versions.env, overridable like build.sh). */
export function versions(): Versions {
  const text = readFileSync(join(TOOLS, 'versions.env'), 'utf8');
  const pick = (key: string): string => {
    const m = new RegExp(`^${key}=(\\S+)$`, 'm').exec(text);
    if (!m?.[1]) throw new Error(`versions.env has no ${key}`);
    return m[1];
  };
  return {
    k8s: process.env.KEYGATE_K8S_VERSION ?? pick('K8S_VERSION'),
    etcd: process.env.KEYGATE_ETCD_VERSION ?? pick('ETCD_VERSION'),
  };
}

export interface Binaries {
  readonly kubeApiserver: string;
  readonly etcd: string;
  readonly etcdctl: string;
}

/** Where build.sh puts the binaries (KEYGATE_KUBE_APISERVER / KEYGATE_ETCD override each one). */
export function binaries(v = versions()): Binaries {
  const home = process.env.HOME ?? '/root';
  const cache = process.env.KEYGATE_K8S_CACHE ?? join(home, '.cache/keygate-k8s');
  const etcdBin = join(cache, `etcd-${v.etcd}`, 'bin');
  return {
    kubeApiserver:
      process.env.KEYGATE_KUBE_APISERVER ?? join(cache, `kube-apiserver-${v.k8s}`, 'bin', 'kube-apiserver'),
    etcd: process.env.KEYGATE_ETCD ?? join(etcdBin, 'etcd'),
    etcdctl: join(etcdBin, 'etcdctl'),
  };
}

export function missingBinaries(b: Binaries): string[] {
  return [b.kubeApiserver, b.etcd].filter((f) => !existsSync(f));
}

/** A free TCP port on 127.0.0.1 (closed again before it is returned). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------- etcd

export interface Etcd {
  readonly service: Service;
  readonly url: string;
}

/** Starts a one-member etcd on loopback ports and waits for /health. */
export async function startEtcd(bin: string, dir: string, name = 'etcd'): Promise<Etcd> {
  mkdirSync(dir, { recursive: true });
  const client = await freePort();
  const peer = await freePort();
  const url = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const service = startService(
    name,
    bin,
    [
      '--name',
      'kg',
      '--data-dir',
      join(dir, 'data'),
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      `kg=${peerUrl}`,
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ],
    { logFile: join(dir, 'etcd.log') },
  );
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (service.child.exitCode !== null) break;
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return { service, url };
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  await service.stop();
  throw new Error(`etcd did not become healthy; last lines:\n${service.lines.slice(-20).join('\n')}`);
}

/** Reads one raw value from etcd through its JSON gateway (keys and values are base64). */
export async function etcdGet(etcdUrl: string, key: string): Promise<Buffer | undefined> {
  const res = await fetch(`${etcdUrl}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: Buffer.from(key).toString('base64') }),
  });
  if (!res.ok) throw new Error(`etcd range ${key}: HTTP ${res.status}`);
  const body = (await res.json()) as { kvs?: { value?: string }[] };
  const value = body.kvs?.[0]?.value;
  return value === undefined ? undefined : Buffer.from(value, 'base64');
}

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

// ------------------------------------------------------------------------------------ kube-apiserver

export interface ApiserverFiles {
  readonly dir: string;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly saKeyFile: string;
  readonly tokenFile: string;
  readonly token: string;
}

/** Serving certificate for 127.0.0.1 (own CA), service-account key and an admin static token. */
export async function apiserverFiles(dir: string): Promise<ApiserverFiles> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pki = await ensurePki(join(dir, 'pki'), 'apiserver');
  const saKeyFile = join(dir, 'sa-key.pem');
  if (!existsSync(saKeyFile)) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(saKeyFile, privateKey.export({ format: 'pem', type: 'pkcs1' }).toString(), { mode: 0o600 });
  }
  const token = `kg-admin-${Date.now().toString(36)}`;
  const tokenFile = join(dir, 'tokens.csv');
  // token,user,uid,"group1,group2": system:masters is cluster-admin under RBAC.
  writeFileSync(tokenFile, `${token},kg-admin,uid-kg-admin,"system:masters"\n`, { mode: 0o600 });
  return {
    dir,
    caFile: pki.caFile,
    certFile: pki.serverCertFile,
    keyFile: pki.serverKeyFile,
    saKeyFile,
    tokenFile,
    token,
  };
}

export interface ApiserverOptions {
  readonly bin: string;
  readonly files: ApiserverFiles;
  readonly etcdUrl: string;
  readonly encryptionConfig: string;
  readonly port: number;
  readonly featureGates?: string;
  readonly name?: string;
  readonly logFile: string;
  readonly verbosity?: number;
}

export function apiserverArgs(o: ApiserverOptions): string[] {
  return [
    `--etcd-servers=${o.etcdUrl}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${o.port}`,
    `--cert-dir=${join(o.files.dir, 'cert-dir')}`,
    `--tls-cert-file=${o.files.certFile}`,
    `--tls-private-key-file=${o.files.keyFile}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${o.files.saKeyFile}`,
    `--service-account-signing-key-file=${o.files.saKeyFile}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--authorization-mode=RBAC',
    `--token-auth-file=${o.files.tokenFile}`,
    '--disable-admission-plugins=ServiceAccount',
    '--endpoint-reconciler-type=none',
    `--encryption-provider-config=${o.encryptionConfig}`,
    '--encryption-provider-config-automatic-reload=false',
    ...(o.featureGates ? [`--feature-gates=${o.featureGates}`] : []),
    `--v=${o.verbosity ?? 1}`,
  ];
}

export interface Apiserver {
  readonly service: Service;
  readonly url: string;
  readonly api: KubeClient;
  /** Seconds from spawn to /readyz ok. */
  readonly readySeconds: number;
}

/** Starts kube-apiserver and waits until /readyz answers ok (which includes the KMS check). */
export async function startApiserver(o: ApiserverOptions): Promise<Apiserver> {
  const t0 = Date.now();
  const service = startService(o.name ?? 'kube-apiserver', o.bin, apiserverArgs(o), { logFile: o.logFile });
  const url = `https://127.0.0.1:${o.port}`;
  const api = new KubeClient(url, o.files.caFile, o.files.token);
  const deadline = Date.now() + 180_000;
  let last = '';
  while (Date.now() < deadline) {
    if (service.child.exitCode !== null || service.child.signalCode !== null) break;
    try {
      const r = await api.request('GET', '/readyz');
      if (r.status === 200) {
        // The default namespace is made by a controller shortly after ready.
        while (
          Date.now() < deadline &&
          (await api.request('GET', '/api/v1/namespaces/default')).status !== 200
        )
          await sleep(250);
        return { service, url, api, readySeconds: (Date.now() - t0) / 1000 };
      }
      last = `${r.status} ${r.text.slice(0, 200)}`;
    } catch (err) {
      last = String(err);
    }
    await sleep(500);
  }
  await service.stop();
  throw new Error(
    `kube-apiserver not ready (${last}); log ${o.logFile}; last lines:\n${service.lines.slice(-30).join('\n')}`,
  );
}

export interface KubeResponse {
  readonly status: number;
  readonly text: string;
}

/** Plain HTTPS to kube-apiserver with the admin bearer token, trusting only our CA. */
export class KubeClient {
  readonly #agent: Agent;
  readonly #base: URL;
  readonly #token: string;

  constructor(base: string, caFile: string, token: string) {
    this.#base = new URL(base);
    this.#token = token;
    this.#agent = new Agent({ ca: readFileSync(caFile), keepAlive: true, maxSockets: 16 });
  }

  request(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<KubeResponse> {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolveRes, reject) => {
      const req = request(
        {
          host: this.#base.hostname,
          port: this.#base.port,
          path,
          method,
          agent: this.#agent,
          headers: {
            authorization: `Bearer ${this.#token}`,
            accept: 'application/json',
            ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}),
          },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolveRes({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  async json<T>(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    const r = await this.request(method, path, body, timeoutMs);
    if (r.status < 200 || r.status >= 300) throw new KubeError(method, path, r);
    return JSON.parse(r.text) as T;
  }

  close(): void {
    this.#agent.destroy();
  }
}

export class KubeError extends Error {
  readonly status: number;
  constructor(method: string, path: string, r: KubeResponse) {
    let message = r.text.slice(0, 300);
    try {
      message = (JSON.parse(r.text) as { message?: string }).message ?? message;
    } catch {
      // not JSON
    }
    super(`${method} ${path}: HTTP ${r.status}: ${message}`);
    this.status = r.status;
  }
}

// ------------------------------------------------------------------------------------------- metrics

/** Sums the samples of `name` whose label set contains every `labels` pair (Prometheus text format). */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const set = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => set.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}
