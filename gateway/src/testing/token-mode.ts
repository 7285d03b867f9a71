import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Clock } from '@keygate/shared';
import { systemRandom } from '@keygate/shared/crypto';
import { createAuditKeyFile } from '../adapters/audit/key-file-signer.js';
import { JwtTokens } from '../adapters/jwt/jwt-tokens.js';
import { createSigningKeyFile, readSigningKeyFiles } from '../adapters/jwt/signing-keys.js';
import { generateApiKey } from '../core/auth/api-key.js';
import type { Role } from '../core/auth/principal.js';
import {
  type CallResult,
  type ClientCert,
  call,
  type GatewayFixture,
  INSTANCE,
  OTHER_INSTANCE,
} from './gateway-fixture.js';

/** Test support for token mode: identities, API keys, signing keys, the audit log, a spawned `serve`. */

export const CLI = fileURLToPath(new URL('../cli.js', import.meta.url));
export const ISSUER = 'keygate-test';
export const AUDIENCE = 'keygate-gateway';

export interface TokenModeSetup {
  readonly config: string;
  /** API key of `prod-eu-1` (wrap, unwrap, rewrap, keys:read on INSTANCE only). */
  readonly apiKey: string;
  /** API key of `ops-admin` (keys:admin on INSTANCE and OTHER_INSTANCE). */
  readonly adminApiKey: string;
  readonly signingKeyFile: string;
  readonly auditDir: string;
  readonly auditKeyFile: string;
  readonly auditPublicKeyPem: string;
  readonly auditPublicKeyFile: string;
}

/**
 * Creates a token signing key and an audit signing key in the fixture's folder (`<prefix>-token-key.pem`,
 * `<prefix>-audit-key.pem`) and returns the `tokens:` and `audit:` sections that use them: the audit log in
 * `auditDir` (a file chain), or in PostgreSQL when `auditDir` is undefined.
 */
export async function tokenAndAuditYaml(
  fx: GatewayFixture,
  prefix: string,
  opts: { readonly auditDir?: string; readonly leeway?: string } = {},
): Promise<string> {
  const signingKeyFile = join(fx.softhsm.dir, `${prefix}-token-key.pem`);
  const auditKeyFile = join(fx.softhsm.dir, `${prefix}-audit-key.pem`);
  await createSigningKeyFile(signingKeyFile);
  await createAuditKeyFile(auditKeyFile);
  return [
    'tokens:',
    `  issuer: ${ISSUER}`,
    `  audience: ${AUDIENCE}`,
    ...(opts.leeway === undefined ? [] : [`  leeway: ${opts.leeway}`]),
    `  signingKeyFiles: [${signingKeyFile}]`,
    'audit:',
    opts.auditDir === undefined ? '  target: postgres' : `  dir: ${opts.auditDir}`,
    `  signingKeyFile: ${auditKeyFile}`,
    '',
  ].join('\n');
}

/** Writes signing keys, API keys and a token-mode config (no `access` allow-list). */
export async function writeTokenModeConfig(
  fx: GatewayFixture,
  name: string,
  opts: {
    auditDir?: string;
    auditStdout?: boolean;
    lifetime?: string;
    /** More top-level YAML sections (e.g. `limits:`). */
    extra?: string;
    /** More keys of the `hsm` section. */
    hsmExtra?: string;
    /** `log.level` (default info). */
    logLevel?: string;
  } = {},
): Promise<TokenModeSetup> {
  const dir = fx.softhsm.dir;
  const signingKeyFile = join(dir, `${name}-token-key.pem`);
  const auditKeyFile = join(dir, `${name}-audit-key.pem`);
  const auditPublicKeyFile = join(dir, `${name}-audit-pub.pem`);
  await createSigningKeyFile(signingKeyFile);
  const { publicKeyPem } = await createAuditKeyFile(auditKeyFile);
  writeFileSync(auditPublicKeyFile, publicKeyPem);
  const app = generateApiKey(systemRandom);
  const admin = generateApiKey(systemRandom);
  const auditDir = opts.auditDir ?? join(dir, `${name}-audit`);
  const config = fx.writeConfig(name, {
    access: false,
    ...(opts.hsmExtra === undefined ? {} : { hsmExtra: opts.hsmExtra }),
    ...(opts.logLevel === undefined ? {} : { logLevel: opts.logLevel }),
    extra: `identities:
  - name: prod-eu-1
    apiKeyHashes: ['${app.hash}']
    certIdentities: [spiffe://keygate/cluster/prod-eu-1]
    roles:
      ${INSTANCE}: [wrap, unwrap, rewrap, keys:read]
  - name: ops-admin
    apiKeyHashes: ['${admin.hash}']
    certIdentities: [ops-admin]
    roles:
      ${INSTANCE}: [keys:admin]
      ${OTHER_INSTANCE}: [keys:admin]
tokens:
  issuer: ${ISSUER}
  audience: ${AUDIENCE}
  lifetime: ${opts.lifetime ?? '10m'}
  leeway: 1s
  signingKeyFiles: [${signingKeyFile}]
audit:
  dir: ${auditDir}
  signingKeyFile: ${auditKeyFile}
  stdout: ${opts.auditStdout ?? false}
  checkpointEvery: 50
${opts.extra ?? ''}`,
  });
  return {
    config,
    apiKey: app.apiKey,
    adminApiKey: admin.apiKey,
    signingKeyFile,
    auditDir,
    auditKeyFile,
    auditPublicKeyPem: publicKeyPem,
    auditPublicKeyFile,
  };
}

/** POST /identity/token with a form body, as the shim sends it. */
export function requestToken(
  url: string,
  ca: string,
  client: ClientCert,
  apiKey: string,
  grantType = 'urn:ibm:params:oauth:grant-type:apikey',
): Promise<CallResult> {
  return call(url, 'POST', '/identity/token', {
    client,
    ca,
    rawBody: new URLSearchParams({ grant_type: grantType, apikey: apiKey }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
  });
}

/** The access token for `apiKey` over `client`'s connection; throws unless 200. */
export async function fetchToken(
  url: string,
  ca: string,
  client: ClientCert,
  apiKey: string,
): Promise<string> {
  const r = await requestToken(url, ca, client, apiKey);
  if (r.status !== 200) throw new Error(`token request answered ${r.status}: ${r.text}`);
  return String(r.json().access_token);
}

/** RFC 8705 x5t#S256 of a PEM certificate. */
export function certThumbprint(pem: string): string {
  return createHash('sha256').update(new X509Certificate(pem).raw).digest('base64url');
}

/** Signs a token directly with the gateway's key file (for expired or hand-made tokens). */
export async function signToken(
  signingKeyFile: string,
  claims: {
    subject: string;
    roles: Record<string, Role[]>;
    cert: ClientCert;
    at: Date;
    lifetimeSeconds: number;
  },
): Promise<string> {
  const clock: Clock = { now: () => claims.at };
  const jwt = new JwtTokens({
    keys: await readSigningKeyFiles([signingKeyFile]),
    issuer: ISSUER,
    audience: AUDIENCE,
    clock,
  });
  const issuedAt = Math.floor(claims.at.getTime() / 1000);
  return jwt.sign({
    subject: claims.subject,
    roles: claims.roles,
    certThumbprint: certThumbprint(claims.cert.cert),
    issuedAt,
    expiresAt: issuedAt + claims.lifetimeSeconds,
  });
}

/** Every complete record line of the audit folder, parsed, in file order. */
export function readAuditRecords(dir: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (!name.endsWith('.jsonl')) continue;
    const text = readFileSync(join(dir, name), 'utf8');
    const lines = text.split('\n');
    lines.pop(); // the part after the last newline: empty, or a torn line
    for (const line of lines) out.push(JSON.parse(line) as Record<string, unknown>);
  }
  return out;
}

/** All audit file bytes of a folder, as one string (for secret scans). */
export function readAuditText(dir: string): string {
  return readdirSync(dir)
    .filter((n) => n.endsWith('.jsonl'))
    .map((n) => readFileSync(join(dir, n), 'utf8'))
    .join('');
}

export interface Served {
  readonly child: ChildProcess;
  readonly url: string;
  /** Everything the process wrote to stdout (logs and audit stream lines). */
  stdout(): string;
}

/** Starts `keygate-gateway serve` and waits for its "gateway listening" log line. */
export async function serve(config: string, env: Record<string, string>): Promise<Served> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', config], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let buf = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => {
    buf += chunk;
  });
  const url = await new Promise<string>((resolve, reject) => {
    const onExit = (code: number | null) => reject(new Error(`gateway exited early (${code})`));
    child.once('exit', onExit);
    const check = () => {
      const m = /"msg":"gateway listening"/.test(buf) ? /"url":"(https:[^"]+)"/.exec(buf) : null;
      if (m?.[1]) {
        child.off('exit', onExit);
        child.stdout?.off('data', check);
        resolve(m[1]);
      }
    };
    child.stdout?.on('data', check);
  });
  return { child, url, stdout: () => buf };
}
