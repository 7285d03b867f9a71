import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { parse, stringify } from 'yaml';
import { waitHealthy } from '#devstack/launch.js';
import { GATEWAY_CLI, REPO_ROOT, SHIM_CLI } from '#devstack/paths.js';
import { type PreparedStack, prepareStack } from '#devstack/prepare-stack.js';
import { writeShimConfig } from '#devstack/shim-config.js';
import { type Proc, spawnProc } from './procs.js';

export type { PreparedStack };
export { REPO_ROOT };

/** Benchmark state: PKI, SoftHSM token, audit logs, sockets, logs (gitignored). */
export const BENCH_HOME = join(REPO_ROOT, 'bench/.work');
export const RESULTS_DIR = join(REPO_ROOT, 'bench/results');

/** Timing knobs; BENCH_QUICK=1 shortens everything (smoke runs). */
export interface Timing {
  readonly roundMs: number;
  readonly rounds: number;
  readonly warmMs: number;
}

export function timing(): Timing {
  if (process.env.BENCH_QUICK === '1') return { roundMs: 300, rounds: 2, warmMs: 600 };
  return {
    roundMs: Number(process.env.BENCH_ROUND_MS ?? 1000),
    rounds: Number(process.env.BENCH_ROUNDS ?? 3),
    warmMs: Number(process.env.BENCH_WARM_MS ?? 2000),
  };
}

/** BENCH_PROFILE=gateway|shim|all: start those with --cpu-prof into bench/.work/prof. */
export function profileArgs(program: 'gateway' | 'shim'): string[] {
  const want = process.env.BENCH_PROFILE ?? '';
  if (want !== program && want !== 'all') return [];
  return ['--cpu-prof', `--cpu-prof-dir=${join(BENCH_HOME, 'prof')}`];
}

let prepared: PreparedStack | undefined;

/** The SoftHSM2 stack state (made once, reused by every benchmark and later runs). */
export async function prepare(): Promise<PreparedStack> {
  if (prepared) return prepared;
  prepared = await prepareStack({
    home: join(BENCH_HOME, 'stack'),
    hsm: 'softhsm2',
    gatewayPort: 0,
    tokenLifetime: '1h',
    logLevel: 'info',
  });
  return prepared;
}

export interface GatewayVariant {
  /** Names the config, the audit folder and the log. */
  readonly name: string;
  readonly sessions?: number;
  /** hsm.workerThreads (BENCH_GATEWAY_WORKERS overrides it for every gateway of a run). */
  readonly workerThreads?: number;
  readonly simulatedLatencyMs?: number;
  /** Extra certificate identities allowed for the stack's identity (G3). */
  readonly extraCertIdentities?: readonly string[];
  /** Another client CA file (a bundle) for the gateway's mTLS (G3). */
  readonly clientCaFile?: string;
  /** Last edit of the config before it is written (H1: the PostgreSQL store and audit chain). */
  readonly edit?: (cfg: GatewayYaml) => void;
}

export type GatewayYaml = Record<string, Record<string, unknown> | unknown[] | unknown>;

/** Writes a gateway config derived from prepareStack's, with its own audit folder. */
export function gatewayConfigFor(p: PreparedStack, v: GatewayVariant): string {
  const cfg = parse(readFileSync(p.gatewayConfig, 'utf8')) as GatewayYaml;
  const hsm = cfg.hsm as Record<string, unknown>;
  if (v.sessions !== undefined) hsm.sessions = v.sessions;
  const workers = process.env.BENCH_GATEWAY_WORKERS ?? v.workerThreads ?? hsm.workerThreads;
  if (workers !== undefined && hsm.backend === 'pkcs11') {
    // Each worker thread holds a session: never more threads than sessions (G2 runs 1 session).
    hsm.workerThreads = Math.min(Number(workers), Number(hsm.sessions ?? 4));
  }
  if (v.simulatedLatencyMs !== undefined) hsm.simulatedLatencyMs = v.simulatedLatencyMs;
  // Diagnostics only: BENCH_GATEWAY_AUDIT=log replaces the durable audit log by audit lines in the
  // log, to see what durability costs.
  const auditDir = join(BENCH_HOME, 'audit', v.name);
  // A fresh log each run: its anchor (beside the folder) goes too, or the gateway refuses the empty log.
  rmSync(auditDir, { recursive: true, force: true });
  rmSync(`${auditDir}.anchor.json`, { force: true });
  (cfg.audit as Record<string, unknown>).dir = auditDir;
  if (process.env.BENCH_GATEWAY_AUDIT === 'log') delete cfg.audit;
  if (v.clientCaFile !== undefined) {
    const tls = (cfg.server as Record<string, Record<string, unknown>>).tls;
    if (tls) tls.clientCaFile = v.clientCaFile;
  }
  if (v.extraCertIdentities) {
    const [first] = cfg.identities as Array<{ certIdentities: string[] }>;
    if (first) first.certIdentities = [...first.certIdentities, ...v.extraCertIdentities];
    // G3's clients stand for as many clusters, but all share one identity and one source address
    // (127.0.0.1): lift the per-source and per-identity limits that would rightly refuse that.
    const lots = { ratePerSecond: 100_000, burst: 100_000 };
    const server = cfg.server as Record<string, unknown>;
    server.perSource = { connections: 100_000, handshakes: 100_000, newConnections: lots };
    cfg.limits = { ...((cfg.limits as Record<string, unknown> | undefined) ?? {}), tokenPerIdentity: lots };
  }
  v.edit?.(cfg);
  const file = join(BENCH_HOME, `gateway-${v.name}.yaml`);
  writeFileSync(file, stringify(cfg));
  return file;
}

export interface RunningGateway {
  readonly proc: Proc;
  readonly url: string;
}

export async function startGateway(
  p: PreparedStack,
  v: GatewayVariant,
  extraEnv: Record<string, string> = {},
): Promise<RunningGateway> {
  const config = gatewayConfigFor(p, v);
  const threads = Math.max(8, (v.sessions ?? 4) + 4);
  const proc = spawnProc(`gateway-${v.name}`, [GATEWAY_CLI, 'serve', '--config', config], {
    env: { ...p.env, UV_THREADPOOL_SIZE: String(threads), ...extraEnv },
    logFile: join(BENCH_HOME, 'logs', `gateway-${v.name}.log`),
    nodeArgs: profileArgs('gateway'),
  });
  const line = await proc.waitForLine(/"msg":"gateway listening"/);
  return { proc, url: (JSON.parse(line) as { url: string }).url };
}

export interface ShimVariant {
  readonly name: string;
  readonly gatewayUrl: string;
  readonly newDek?: boolean;
  readonly dekMaxUses?: number;
  readonly refreshSeconds?: number;
  readonly cacheSize?: number;
  /** NODE_OPTIONS for the shim process (M1: V8 heap limits). */
  readonly nodeOptions?: string;
  /** Another node binary for the shim (tools/rss-soak.ts: Node 24 beside the bench's Node 20). */
  readonly node?: string;
  /** More environment for the shim (tools/rss-soak.ts: MALLOC_ARENA_MAX, UV_THREADPOOL_SIZE). */
  readonly env?: Record<string, string>;
  /** KEYGATE.GATEWAY_HTTP2 (the shim's default when absent). */
  readonly http2?: boolean;
  /** More KEYGATE keys, written as they are. */
  readonly extraKeygate?: Readonly<Record<string, string | number>>;
}

export interface RunningShim {
  readonly proc: Proc;
  readonly socket: string;
  readonly healthPort: number;
  readonly keyId: string;
}

/** The shim's kmsplugin-config.yaml for a benchmark variant (the dev stack's writer, health on any port). */
export function shimConfigFor(p: PreparedStack, v: ShimVariant, socket: string): string {
  const file = join(BENCH_HOME, `shim-${v.name}.yaml`);
  writeShimConfig(p, file, {
    gatewayUrls: [v.gatewayUrl],
    socket,
    healthzPort: 0,
    ...(v.newDek === undefined ? {} : { newDek: v.newDek }),
    ...(v.refreshSeconds === undefined ? {} : { refreshSeconds: v.refreshSeconds }),
    ...(v.dekMaxUses === undefined ? {} : { dekMaxUses: v.dekMaxUses }),
    ...(v.cacheSize === undefined ? {} : { cacheSize: v.cacheSize }),
    extraKeygate: { ...(v.http2 === undefined ? {} : { GATEWAY_HTTP2: String(v.http2) }), ...v.extraKeygate },
  });
  return file;
}

export async function startShim(p: PreparedStack, v: ShimVariant): Promise<RunningShim> {
  const dir = join(BENCH_HOME, 'sock');
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, `${v.name}.sock`);
  const config = shimConfigFor(p, v, socket);
  const args = [SHIM_CLI, 'serve', '--config', config];
  const proc = spawnProc(`shim-${v.name}`, v.node ? [...profileArgs('shim'), ...args] : args, {
    env: { ...v.env, ...(v.nodeOptions ? { NODE_OPTIONS: v.nodeOptions } : {}) },
    logFile: join(BENCH_HOME, 'logs', `shim-${v.name}.log`),
    ...(v.node ? { command: v.node } : { nodeArgs: profileArgs('shim') }),
  });
  const line = await proc.waitForLine(/"msg":"keygate shim started"/);
  const keyId = await waitHealthy(socket);
  return { proc, socket, healthPort: (JSON.parse(line) as { healthPort: number }).healthPort, keyId };
}

/** An mTLS keep-alive client for the gateway (or the https echo), as the shim holds one. */
export class MtlsClient {
  readonly agent: Agent;
  constructor(
    readonly url: string,
    tls: { ca: Buffer; cert: Buffer; key: Buffer },
    connections: number,
  ) {
    this.agent = new Agent({
      connect: { ca: tls.ca, cert: tls.cert, key: tls.key },
      keepAliveTimeout: 60_000,
      connections,
      pipelining: 1,
    });
  }

  async post(
    path: string,
    body: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; text: string }> {
    const res = await request(`${this.url}${path}`, {
      method: 'POST',
      dispatcher: this.agent,
      headers,
      body,
    });
    const text = await res.body.text();
    return { status: res.statusCode, text };
  }

  async get(path: string): Promise<string> {
    const res = await request(`${this.url}${path}`, { dispatcher: this.agent });
    return res.body.text();
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}

export function stackTls(p: PreparedStack): { ca: Buffer; cert: Buffer; key: Buffer } {
  return {
    ca: readFileSync(p.pki.caFile),
    cert: readFileSync(p.pki.clientCertFile),
    key: readFileSync(p.pki.clientKeyFile),
  };
}

/** An access token for the stack's identity over `client`'s connection (tokens are bound to the cert). */
export async function fetchToken(client: MtlsClient, apiKey: string): Promise<string> {
  const body = new URLSearchParams({
    grant_type: 'urn:ibm:params:oauth:grant-type:apikey',
    apikey: apiKey,
  }).toString();
  const r = await client.post('/identity/token', body, {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  });
  if (r.status !== 200) throw new Error(`token: HTTP ${r.status} ${r.text.slice(0, 200)}`);
  return (JSON.parse(r.text) as { access_token: string }).access_token;
}

export interface UnwrapFixture {
  readonly path: string;
  readonly body: string;
  readonly headers: Record<string, string>;
  /** The gateway's answer, for the echo server to send back byte for byte in size. */
  readonly response: string;
}

/** Wraps a random DEK with the shim's AAD and returns the unwrap request the load repeats. */
export async function unwrapFixture(
  p: PreparedStack,
  client: MtlsClient,
  token: string,
): Promise<UnwrapFixture> {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json',
    authorization: `Bearer ${token}`,
    'bluemix-instance': p.instanceId,
  };
  const aad = ['keygate-shim', p.crkId];
  const w = await client.post(
    `/api/v2/keys/${p.crkId}/actions/wrap`,
    JSON.stringify({ plaintext: randomBytes(32).toString('base64'), aad }),
    headers,
  );
  if (w.status !== 200) throw new Error(`wrap: HTTP ${w.status} ${w.text.slice(0, 200)}`);
  const ciphertext = (JSON.parse(w.text) as { ciphertext: string }).ciphertext;
  const path = `/api/v2/keys/${p.crkId}/actions/unwrap`;
  const body = JSON.stringify({ ciphertext, aad });
  const u = await client.post(path, body, headers);
  if (u.status !== 200) throw new Error(`unwrap: HTTP ${u.status} ${u.text.slice(0, 200)}`);
  return { path, body, headers, response: u.text };
}

/** Fetches a token for the stack's API key on one setup connection and builds the unwrap fixture. */
export async function gatewayUnwrapFixture(p: PreparedStack, gatewayUrl: string): Promise<UnwrapFixture> {
  const setup = new MtlsClient(gatewayUrl, stackTls(p), 1);
  try {
    const token = await fetchToken(setup, readFileSync(p.apiKeyFile, 'utf8').trim());
    return await unwrapFixture(p, setup, token);
  } finally {
    await setup.close();
  }
}

/** A call for runLoad: one unwrap, failing on any non-200. */
export function unwrapCall(client: MtlsClient, f: UnwrapFixture): () => Promise<void> {
  return async () => {
    const r = await client.post(f.path, f.body, f.headers);
    if (r.status !== 200) throw new Error(`HTTP ${r.status} ${r.text.slice(0, 120)}`);
  };
}
