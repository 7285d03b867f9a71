/**
 * The development stack's state on disk: PKI, HSM token (SoftHSM2 or the software backend), API keys,
 * signing keys, the gateway config and the root key, made with the gateway's own commands.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensurePki, type PkiFiles } from './dev-pki.js';
import { GATEWAY_CLI } from './paths.js';
import { createSoftHsmToken, findSoftHsmModule } from './softhsm.js';

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
  /** The web console's port (docs/console.md); 0 = any free port; absent = no console. */
  readonly consolePort?: number;
  /** The console's `idleTimeout` (default 15m); the browser suite makes it short. */
  readonly consoleIdleTimeout?: string;
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
  profile: softhsm2
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
      # The web console's login, and the fleet view (docs/console.md).
      '*': [fleet:read]
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
${
  opts.consolePort === undefined
    ? ''
    : `console:
  listen: 127.0.0.1:${opts.consolePort}
  idleTimeout: ${opts.consoleIdleTimeout ?? '15m'}
`
}`,
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
