import { writeFileSync } from 'node:fs';
import { type Agent, request } from 'node:https';
import { join } from 'node:path';
import { createCa, type IssuedCert, issueLeaf } from '../pki/index.js';
import { createSoftHsmDir, SOFTHSM_MODULE, type SoftHsmDir } from './softhsm.js';

/** Test support: certificates, a SoftHSM2 token and a config file for a gateway, and an HTTPS client. */

export interface ClientCert {
  readonly cert: string;
  readonly key: string;
}

export interface GatewayFixture {
  readonly softhsm: SoftHsmDir;
  readonly ca: IssuedCert;
  readonly clients: {
    readonly allowed: ClientCert;
    readonly admin: ClientCert;
    readonly stranger: ClientCert;
    readonly foreign: ClientCert;
  };
  readonly tokenLabel: string;
  readonly pin: string;
  /** Writes a config file; `overrides` replace top-level YAML sections. */
  writeConfig(
    name: string,
    opts?: {
      pinEnv?: string;
      pinFile?: string;
      tokenLabel?: string;
      extra?: string;
      /** Write the `access.clients` allow-list (default true; false for token mode). */
      access?: boolean;
      /** The key store file (default keys.json in the fixture's folder). */
      storeFile?: string;
      /** The whole `store` section's body instead of the file store (e.g. postgresStoreYaml(pg)). */
      store?: string;
      /** `store.createIfMissing` (default true: a fixture's gateway is a first start). */
      createIfMissing?: boolean;
      /** More keys of the `hsm` section, e.g. `simulatedLatencyMs: 50`. */
      hsmExtra?: string;
      /** `hsm.module` (default SOFTHSM_MODULE), e.g. an interposer's modulePath. */
      module?: string;
      /** `log.level` (default info). */
      logLevel?: string;
      /** More keys of the `server` section, one per line, e.g. `headersTimeoutMs: 500`. */
      serverExtra?: readonly string[];
      /** `hsm.workerThreads` (absent: the default, 0). */
      workerThreads?: number;
    },
  ): string;
}

export const INSTANCE = 'inst-a';
export const OTHER_INSTANCE = 'inst-b';
/** A second token, for tests that log in with a wrong PIN. */
export const BAD_PIN_TOKEN = 'kg-bad';

export async function createGatewayFixture(): Promise<GatewayFixture> {
  const softhsm = createSoftHsmDir('keygate-gw-');
  const tokenLabel = 'kg-gw';
  const pin = '24680';
  softhsm.addToken(tokenLabel, pin);
  // SoftHSM2 finds tokens at C_Initialize: every token a test needs must exist before a gateway starts.
  softhsm.addToken(BAD_PIN_TOKEN, '11111');
  const ca = await createCa('keygate test CA');
  const otherCa = await createCa('someone else');
  const server = await issueLeaf(ca, {
    commonName: 'gateway',
    usage: 'server',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
  });
  const leaf = async (issuer: IssuedCert, cn: string, uri?: string): Promise<ClientCert> => {
    const c = await issueLeaf(issuer, { commonName: cn, usage: 'client', ...(uri ? { uris: [uri] } : {}) });
    return { cert: c.certPem, key: c.keyPem };
  };
  const clients = {
    allowed: await leaf(ca, 'prod-eu-1', 'spiffe://keygate/cluster/prod-eu-1'),
    admin: await leaf(ca, 'ops-admin'),
    stranger: await leaf(ca, 'stranger', 'spiffe://keygate/cluster/stranger'),
    foreign: await leaf(otherCa, 'prod-eu-1', 'spiffe://keygate/cluster/prod-eu-1'),
  };
  const files = {
    cert: join(softhsm.dir, 'server.pem'),
    key: join(softhsm.dir, 'server-key.pem'),
    ca: join(softhsm.dir, 'ca.pem'),
    pin: join(softhsm.dir, 'pin'),
  };
  writeFileSync(files.cert, server.certPem);
  writeFileSync(files.key, server.keyPem);
  writeFileSync(files.ca, ca.certPem);
  writeFileSync(files.pin, `${pin}\n`);
  return {
    softhsm,
    ca,
    clients,
    tokenLabel,
    pin,
    writeConfig(name, opts = {}) {
      const file = join(softhsm.dir, `${name}.yaml`);
      const pinRef = opts.pinEnv ? `env: ${opts.pinEnv}` : `file: ${opts.pinFile ?? files.pin}`;
      writeFileSync(
        file,
        `server:
  host: 127.0.0.1
  port: 0
  tls: { certFile: ${files.cert}, keyFile: ${files.key}, clientCaFile: ${files.ca} }
  bodyLimitBytes: 8192
${(opts.serverExtra ?? []).map((l) => `  ${l}\n`).join('')}hsm:
  backend: pkcs11
  module: ${opts.module ?? SOFTHSM_MODULE}
  tokenLabel: ${opts.tokenLabel ?? tokenLabel}
  pin: { ${pinRef} }
  sessions: 4
${opts.workerThreads === undefined ? '' : `  workerThreads: ${opts.workerThreads}\n`}${opts.hsmExtra === undefined ? '' : `  ${opts.hsmExtra}\n`}store:
${
  opts.store ??
  `  file: ${opts.storeFile ?? join(softhsm.dir, 'keys.json')}
  createIfMissing: ${opts.createIfMissing ?? true}`
}
${
  opts.access === false
    ? ''
    : `access:
  clients:
    - identity: spiffe://keygate/cluster/prod-eu-1
      instances: [${INSTANCE}, ${OTHER_INSTANCE}]
      roles: [wrap, unwrap, rewrap, keys:read]
    - identity: ops-admin
      instances: ['*']
      roles: [keys:admin, keys:read]`
}
log:
  level: ${opts.logLevel ?? 'info'}
${opts.extra ?? ''}`,
      );
      return file;
    },
  };
}

export interface CallResult {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
}

/** One HTTPS request with a client certificate (or none); a fresh connection each time. */
export function call(
  url: string,
  method: string,
  path: string,
  opts: {
    client?: ClientCert;
    ca: string;
    instance?: string;
    body?: unknown;
    rawBody?: string | Buffer;
    headers?: Record<string, string>;
    /** A keep-alive agent (its own client certificate); default a fresh connection per call. */
    agent?: Agent;
  },
): Promise<CallResult> {
  const payload =
    opts.rawBody !== undefined
      ? opts.rawBody
      : opts.body === undefined
        ? undefined
        : JSON.stringify(opts.body);
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}${path}`,
      {
        method,
        ca: opts.ca,
        ...(opts.client ? { cert: opts.client.cert, key: opts.client.key } : {}),
        agent: opts.agent ?? false,
        headers: {
          ...(opts.instance ? { 'bluemix-instance': opts.instance } : {}),
          ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
          ...opts.headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text,
            json: <T>() => JSON.parse(text) as T,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** The error code of a Key Protect error collection answer. */
export function errorCode(r: CallResult): string | undefined {
  const body = r.json<{ resources?: { reasons?: { code?: string }[] }[] }>();
  return body.resources?.[0]?.reasons?.[0]?.code;
}

/** The `store` section body for a test PostgreSQL (indented for writeConfig's `store` option). */
export function postgresStoreYaml(
  pg: {
    readonly host: string;
    readonly port: number;
    readonly database: string;
    readonly user: string;
    readonly passwordFile: string;
  },
  extra: readonly string[] = [],
): string {
  return [
    '  postgres:',
    `    url: postgresql://${pg.user}@${pg.host}:${pg.port}/${pg.database}`,
    `    passwordFile: ${pg.passwordFile}`,
    ...extra.map((l) => `    ${l}`),
  ].join('\n');
}
