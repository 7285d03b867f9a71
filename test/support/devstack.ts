import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { KmsClient } from '@keygate/shim';
import { ensurePki, type PkiFiles } from './dev-pki.js';
import { encryptionConfigV1, encryptionConfigV2 } from './encryption-config.js';
import { type Service, startService } from './processes.js';
import { createSoftHsmToken, findSoftHsmModule } from './softhsm.js';

/** Repository root (this file is test/dist/support/devstack.js once built). */
export const REPO_ROOT = resolve(new URL('../../../', import.meta.url).pathname);
export const GATEWAY_CLI = join(REPO_ROOT, 'gateway/dist/cli.js');
export const SHIM_CLI = join(REPO_ROOT, 'shim/dist/cli.js');

/** What `npm start` writes to `<home>/stack.json` (all paths absolute). */
export interface StackInfo {
  readonly gatewayUrl: string;
  readonly socket: string;
  readonly healthzUrl: string;
  readonly caFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  readonly apiKeyFile: string;
  /** The operator identity `ops-admin` (keys:admin and keys:read on the dev instance). */
  readonly adminApiKeyFile: string;
  readonly adminCertFile: string;
  readonly adminKeyFile: string;
  readonly instanceId: string;
  readonly crkId: string;
  readonly encryptionConfig: string;
  readonly encryptionConfigV1: string;
  readonly gatewayConfig: string;
  readonly shimConfig: string;
  readonly hsm: 'softhsm2' | 'software';
}

export interface DevStackOptions {
  /** State folder (`.keygate/dev` for `npm start`); reused when it exists. */
  readonly home: string;
  /** Delete the state folder first. */
  readonly reset?: boolean;
  /** Gateway port; 0 = any free port. */
  readonly gatewayPort?: number;
  /** Shim health port; 0 = any free port. */
  readonly healthzPort?: number;
  /** `hsm: 'auto'` uses SoftHSM2 when installed, else the software backend. */
  readonly hsm?: 'auto' | 'softhsm2' | 'software';
  readonly newDek?: boolean;
  readonly keyIdRefreshSeconds?: number;
  readonly tokenLifetime?: string;
  readonly instanceId?: string;
  /** Log level of both programs; the launcher reads their info-level start lines, so no quieter. */
  readonly logLevel?: 'info' | 'debug' | 'trace';
  /** The gateway's `log.requests`: one info line per answered request (the e2e suite counts them). */
  readonly logRequests?: boolean;
  /** Called with every output line of the two programs, and which program printed it. */
  readonly echo?: (line: string, program: 'gateway' | 'shim') => void;
}

/** State that survives restarts: PKI, HSM token, secrets and the created key. */
export interface PreparedStack {
  readonly home: string;
  readonly pki: PkiFiles;
  readonly hsm: 'softhsm2' | 'software';
  readonly softhsmConf?: string;
  readonly gatewayConfig: string;
  readonly apiKeyFile: string;
  readonly adminApiKeyFile: string;
  readonly auditDir: string;
  readonly auditPublicKeyFile: string;
  readonly instanceId: string;
  readonly crkId: string;
  readonly env: Record<string, string>;
}

const PIN = '2468';

/** Makes (or reuses) everything the stack needs on disk, and creates the root key once. */
export async function prepareStack(opts: DevStackOptions): Promise<PreparedStack> {
  const home = resolve(opts.home);
  if (opts.reset) rmSync(home, { recursive: true, force: true });
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const secrets = join(home, 'secrets');
  mkdirSync(secrets, { recursive: true, mode: 0o700 });
  const pki = ensurePki(join(home, 'pki'), 'dev');
  const instanceId = opts.instanceId ?? 'dev-instance';

  const want = opts.hsm ?? 'auto';
  const haveSoftHsm = findSoftHsmModule() !== undefined;
  if (want === 'softhsm2' && !haveSoftHsm)
    throw new Error('SoftHSM2 is not installed (apt-get install softhsm2)');
  const statePath = join(home, 'state.json');
  const previous = existsSync(statePath)
    ? (JSON.parse(readFileSync(statePath, 'utf8')) as { hsm: string; crkId: string })
    : undefined;
  const hsm: 'softhsm2' | 'software' =
    (previous?.hsm as 'softhsm2' | 'software' | undefined) ??
    (want === 'software' || !haveSoftHsm ? 'software' : 'softhsm2');

  const env: Record<string, string> = { UV_THREADPOOL_SIZE: '8' };
  let hsmYaml: string;
  let softhsmConf: string | undefined;
  const pinFile = join(secrets, 'hsm-pin');
  if (hsm === 'softhsm2') {
    const dir = join(home, 'softhsm');
    softhsmConf = join(dir, 'softhsm2.conf');
    if (!existsSync(softhsmConf)) createSoftHsmToken(dir, 'keygate-dev', PIN);
    writeFileSync(pinFile, `${PIN}\n`, { mode: 0o600 });
    env.SOFTHSM2_CONF = softhsmConf;
    hsmYaml = `hsm:
  backend: pkcs11
  module: ${findSoftHsmModule()}
  tokenLabel: keygate-dev
  pin: { file: ${pinFile} }
  sessions: 4
  # SoftHSM2's calls are CPU work of ~30 us: run them on worker threads, not the libuv pool.
  workerThreads: 2`;
  } else {
    const master = join(secrets, 'soft-master.key');
    if (!existsSync(master)) writeFileSync(master, randomBytes(32).toString('hex'), { mode: 0o600 });
    hsmYaml = `hsm:
  backend: software
  keyFile: ${join(home, 'soft-keys.json')}
  masterKeyFile: ${master}`;
  }

  // Secrets are made with the gateway's own commands, as an operator would (docs/gateway.md).
  const gatewayCli = (...args: string[]) =>
    execFileSync(process.execPath, [GATEWAY_CLI, ...args], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const apiKey = (name: string) => {
    const keyFile = join(secrets, name);
    const hashFile = join(secrets, `${name}.hash`);
    if (!existsSync(keyFile) || !existsSync(hashFile)) {
      // Prints the key once, then the identity lines with `apiKeyHashes: ['sha256:…']`.
      const out = gatewayCli('apikey', 'create', '--name', name);
      const key = /^kg_\S+$/m.exec(out)?.[0];
      const hash = /sha256:[0-9a-f]{64}/.exec(out)?.[0];
      if (!key || !hash) throw new Error('keygate-gateway apikey create printed no key and hash');
      writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
      writeFileSync(hashFile, `${hash}\n`);
    }
    return { keyFile, hash: readFileSync(hashFile, 'utf8').trim() };
  };
  const { keyFile: apiKeyFile, hash: apiKeyHash } = apiKey('api-key');
  const { keyFile: adminApiKeyFile, hash: adminApiKeyHash } = apiKey('admin-api-key');
  const tokenKey = join(secrets, 'token-signing-key.pem');
  if (!existsSync(tokenKey)) gatewayCli('tokens', 'keygen', tokenKey);
  const auditKey = join(secrets, 'audit-signing-key.pem');
  const auditPublicKeyFile = join(home, 'audit-public-key.pem');
  if (!existsSync(auditKey)) writeFileSync(auditPublicKeyFile, gatewayCli('audit', 'keygen', auditKey));
  const auditDir = join(home, 'audit');

  const gatewayConfig = join(home, 'gateway.yaml');
  writeFileSync(
    gatewayConfig,
    `# keygate gateway, development stack (written by npm start; edits are overwritten)
server:
  host: 127.0.0.1
  port: ${opts.gatewayPort ?? 28443}
  tls:
    certFile: ${pki.serverCertFile}
    keyFile: ${pki.serverKeyFile}
    clientCaFile: ${pki.caFile}
${hsmYaml}
store:
  file: ${join(home, 'keys.json')}
identities:
  - name: dev-cluster
    apiKeyHashes: ['${apiKeyHash}']
    certIdentities: ['${pki.clientIdentity}']
    roles:
      ${instanceId}: [wrap, unwrap, rewrap, keys:read]
  # The operator: creates, rotates, disables and destroys keys through the API (docs/api.md).
  - name: ops-admin
    apiKeyHashes: ['${adminApiKeyHash}']
    certIdentities: ['${pki.adminIdentity}']
    roles:
      ${instanceId}: [keys:read, keys:admin]
tokens:
  issuer: keygate-dev
  audience: keygate-gateway
  lifetime: ${opts.tokenLifetime ?? '10m'}
  signingKeyFiles: [${tokenKey}]
audit:
  dir: ${auditDir}
  signingKeyFile: ${auditKey}
log:
  level: ${opts.logLevel ?? 'info'}
  requests: ${opts.logRequests ?? false}
`,
  );

  let crkId = previous?.crkId;
  if (!crkId) {
    const out = gatewayCli(
      'keys',
      'create',
      '--config',
      gatewayConfig,
      '--instance',
      instanceId,
      '--name',
      'dev-root-key',
    );
    crkId = (JSON.parse(out) as { id: string }).id;
    writeFileSync(statePath, `${JSON.stringify({ hsm, crkId }, null, 2)}\n`);
  }
  return {
    home,
    pki,
    hsm,
    softhsmConf,
    gatewayConfig,
    apiKeyFile,
    adminApiKeyFile,
    auditDir,
    auditPublicKeyFile,
    instanceId,
    crkId,
    env,
  };
}

/**
 * Changes the stack's root key with `keygate-gateway keys <action>`, as an operator would (on the
 * store and the HSM directly; the running gateway sees it within a second).
 */
export function rootKeyAction(p: PreparedStack, action: 'rotate' | 'disable' | 'enable' | 'destroy'): void {
  execFileSync(
    process.execPath,
    [GATEWAY_CLI, 'keys', action, '--config', p.gatewayConfig, '--instance', p.instanceId, '--id', p.crkId],
    { env: { ...process.env, ...p.env }, stdio: 'ignore' },
  );
}

/** Rotates the stack's root key with `keygate-gateway keys rotate`. */
export function rotateRootKey(p: PreparedStack): void {
  rootKeyAction(p, 'rotate');
}

/** Writes the shim's kmsplugin-config.yaml (IBM Cloud Private format plus keygate's section). */
export function writeShimConfig(
  p: PreparedStack,
  file: string,
  o: {
    gatewayUrls: string[];
    socket: string;
    healthzPort: number;
    newDek?: boolean;
    refreshSeconds?: number;
    /** KEYGATE.DEK_MAX_USES and CACHE_SIZE; the shim's defaults when absent. */
    dekMaxUses?: number;
    cacheSize?: number;
    /** More KEYGATE keys, written as they are. */
    extraKeygate?: Readonly<Record<string, string | number>>;
  },
): void {
  const [first, ...rest] = o.gatewayUrls;
  const limits = [
    o.dekMaxUses === undefined ? '' : `  DEK_MAX_USES: ${o.dekMaxUses}\n`,
    o.cacheSize === undefined ? '' : `  CACHE_SIZE: ${o.cacheSize}\n`,
    ...Object.entries(o.extraKeygate ?? {}).map(([k, v]) => `  ${k}: ${v}\n`),
  ].join('');
  writeFileSync(
    file,
    `# keygate shim: IBM Cloud Private kmsplugin-config.yaml, plus keygate's own keys under KEYGATE
SERVER_CONFIG:
  REGION: "local"
  NUM_LEN_BYTES: 32
  CACHE_TIMEOUT_IN_HOURS: 24
  RESTART_DELAY_IN_SECONDS: 3
  UNIX_SOCKET_PATH: "${o.socket}"
  TOKEN_URL: "${first}/identity/token"
  TOKEN_URL_CA_FILE: "${p.pki.caFile}"
  HEALTHZ_PATH: "/healthz"
  HEALTHZ_PORT: ${o.healthzPort}
  NEW_DEK: ${o.newDek ?? false}
  MAX_RETRIES: 2
KP_CONFIG:
  VERSION: "v2"
  CRK_ID: "${p.crkId}"
  URL: "${first}"
  KP_CA_FILE: "${p.pki.caFile}"
  INSTANCE_ID: "${p.instanceId}"
LOGGER:
  LOG_LEVEL: "info"
  LOG_ALL_VALUES: false
KEYGATE:
  API_KEY_FILE: "${p.apiKeyFile}"
  CLIENT_CERT_FILE: "${p.pki.clientCertFile}"
  CLIENT_KEY_FILE: "${p.pki.clientKeyFile}"
  GATEWAY_URLS: ${JSON.stringify(rest)}
  KEY_ID_REFRESH_SECONDS: ${o.refreshSeconds ?? 60}
${limits}`,
  );
}

/** Starts the gateway CLI on a prepared stack and returns it with its URL. */
export async function startGatewayProcess(
  p: PreparedStack,
  opts: { echo?: (l: string) => void; name?: string; config?: string } = {},
): Promise<{ service: Service; url: string }> {
  const service = startService(
    opts.name ?? 'gateway',
    process.execPath,
    [GATEWAY_CLI, 'serve', '--config', opts.config ?? p.gatewayConfig],
    {
      env: p.env,
      ...(opts.echo ? { echo: opts.echo } : {}),
    },
  );
  let line: string;
  try {
    line = await service.waitFor(/"msg":"gateway listening"/, 60_000);
  } catch (err) {
    await service.kill();
    throw err;
  }
  const url = (JSON.parse(line) as { url: string }).url;
  return { service, url };
}

/** Starts the shim CLI with `configFile`; resolves once it has printed its start line. */
export async function startShimProcess(
  configFile: string,
  opts: { echo?: (l: string) => void; name?: string } = {},
): Promise<{ service: Service; healthPort: number }> {
  const service = startService(
    opts.name ?? 'shim',
    process.execPath,
    [SHIM_CLI, 'serve', '--config', configFile],
    {
      ...(opts.echo ? { echo: opts.echo } : {}),
    },
  );
  let line: string;
  try {
    line = await service.waitFor(/"msg":"keygate shim started"/, 60_000);
  } catch (err) {
    await service.kill();
    throw err;
  }
  return { service, healthPort: (JSON.parse(line) as { healthPort: number }).healthPort };
}

/** Polls Status until healthz is "ok" and returns the key_id. */
export async function waitHealthy(socket: string, timeoutMs = 30_000): Promise<string> {
  const client = new KmsClient(socket);
  const deadline = Date.now() + timeoutMs;
  let last = '';
  try {
    while (Date.now() < deadline) {
      try {
        const s = await client.status();
        if (s.healthz === 'ok') return s.key_id;
        last = s.healthz;
      } catch (err) {
        last = String(err);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    client.close();
  }
  throw new Error(`shim on ${socket} not healthy within ${timeoutMs} ms: ${last}`);
}

/** A running development stack. */
export interface DevStack {
  readonly info: StackInfo;
  readonly prepared: PreparedStack;
  readonly gateway: Service;
  readonly shim: Service;
  stop(): Promise<void>;
}

/** Prepares and starts gateway and shim, waits until the shim is healthy, writes stack.json. */
export async function startDevStack(opts: DevStackOptions): Promise<DevStack> {
  const p = await prepareStack(opts);
  const echo = opts.echo;
  const gw = await startGatewayProcess(p, echo ? { echo: (l) => echo(l, 'gateway') } : {});
  const socket = join(p.home, 'kms.sock');
  const shimConfig = join(p.home, 'kmsplugin-config.yaml');
  try {
    writeShimConfig(p, shimConfig, {
      gatewayUrls: [gw.url],
      socket,
      healthzPort: opts.healthzPort ?? 20358,
      newDek: opts.newDek ?? false,
      refreshSeconds: opts.keyIdRefreshSeconds ?? 60,
    });
    const shim = await startShimProcess(shimConfig, echo ? { echo: (l) => echo(l, 'shim') } : {});
    try {
      await waitHealthy(socket);
    } catch (err) {
      // A shim left running would keep the test runner (or npm start) alive forever.
      await shim.service.stop();
      throw err;
    }
    const encryptionConfig = join(p.home, 'encryption-config.yaml');
    const encryptionConfigV1Path = join(p.home, 'encryption-config-v1.yaml');
    writeFileSync(encryptionConfig, encryptionConfigV2({ socket }));
    writeFileSync(encryptionConfigV1Path, encryptionConfigV1({ socket }));
    const info: StackInfo = {
      gatewayUrl: gw.url,
      socket,
      healthzUrl: `http://127.0.0.1:${shim.healthPort}/healthz`,
      caFile: p.pki.caFile,
      clientCertFile: p.pki.clientCertFile,
      clientKeyFile: p.pki.clientKeyFile,
      apiKeyFile: p.apiKeyFile,
      adminApiKeyFile: p.adminApiKeyFile,
      adminCertFile: p.pki.adminCertFile,
      adminKeyFile: p.pki.adminKeyFile,
      instanceId: p.instanceId,
      crkId: p.crkId,
      encryptionConfig,
      encryptionConfigV1: encryptionConfigV1Path,
      gatewayConfig: p.gatewayConfig,
      shimConfig,
      hsm: p.hsm,
    };
    writeFileSync(join(p.home, 'stack.json'), `${JSON.stringify(info, null, 2)}\n`);
    return {
      info,
      prepared: p,
      gateway: gw.service,
      shim: shim.service,
      async stop() {
        await shim.service.stop();
        await gw.service.stop();
      },
    };
  } catch (err) {
    await gw.service.stop();
    throw err;
  }
}
