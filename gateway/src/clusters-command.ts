import { randomUUID, X509Certificate } from 'node:crypto';
import { dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { INSTANCE_ID_RULE, isInstanceId, isKeyId, KEY_ID_RULE, KeyState } from '@keygate/shared/api';
import { asKeygateError, KeygateError } from '@keygate/shared/errors';
import { createLogger, type Logger } from '@keygate/shared/log';
import { changedBy } from './adapters/clusters/file-cluster-registry.js';
import { type BundleOptions, writeClusterBundle } from './clusters/bundle-writer.js';
import { openClusterRuntime } from './clusters/cluster-runtime.js';
import { type GatewayConfig, loadGatewayConfig } from './config.js';
import type { AuditOperation, AuditSink } from './core/audit/audit-event.js';
import { GLOBAL_ROLES, ROLES, type Role } from './core/auth/principal.js';
import {
  CLUSTER_NAME,
  CLUSTER_NAME_RULE,
  type ClusterFleetHook,
  type ClusterRecord,
  clusterCertIdentity,
  DEFAULT_CLUSTER_ROLES,
} from './core/clusters/cluster.js';
import { issueLeaf } from './pki/issue.js';
import { readCa } from './pki/pki-command.js';

export const CLUSTERS_USAGE = `  keygate-gateway clusters add NAME --config FILE --instance ID --key CRK_ID [--roles wrap,unwrap,rewrap]
                                [--ca DIR] [--gateway-url URL ...] [--out DIR] [--days N] [--image IMAGE]
  keygate-gateway clusters list --config FILE [--json]
  keygate-gateway clusters show NAME --config FILE
  keygate-gateway clusters remove NAME --config FILE [--yes]`;

type Print = (line: string) => void;

class UsageError extends Error {}

/** Optional parts the gateway wires in once they exist (issue 18's fleet store). */
export interface ClustersCommandDeps {
  readonly fleet?: ClusterFleetHook | undefined;
  /**
   * Opens the config's fleet store for `show` (read only: it must not write what a running gateway
   * owns) and `remove` (closed after the command), e.g. `(config) => buildFleetStore(config)`;
   * `fleet` wins when both are given.
   */
  readonly openFleet?:
    | ((
        config: GatewayConfig,
        configFile: string,
        readOnly: boolean,
      ) => Promise<(ClusterFleetHook & { close(): Promise<void> }) | undefined>)
    | undefined;
  readonly logger?: Logger | undefined;
  /** Asked before `remove` without --yes; default: refuse (no terminal prompt here). */
  readonly confirm?: ((question: string) => Promise<boolean>) | undefined;
}

/**
 * `keygate-gateway clusters …` (docs/clusters.md): onboards a cluster in one command (identity,
 * API key, client certificate from the gateway's CA, and the bundle for its control-plane nodes),
 * lists, shows and removes (revokes) clusters. Returns the exit code: 0 done, 1 failed, 2 usage.
 * Secrets go to files only: the API key is never printed.
 */
export async function runClustersCommand(
  argv: readonly string[],
  out: Print,
  err: Print,
  deps: ClustersCommandDeps = {},
): Promise<number> {
  let values: ReturnType<typeof parse>['values'];
  let positionals: string[];
  try {
    ({ values, positionals } = parse(argv[0] === 'clusters' ? argv.slice(1) : argv));
  } catch (e) {
    err(`clusters: ${(e as Error).message}\nusage:\n${CLUSTERS_USAGE}`);
    return 2;
  }
  const [sub, name, ...extra] = positionals;
  const usage = (why: string) => {
    err(`clusters: ${why}\nusage:\n${CLUSTERS_USAGE}`);
    return 2;
  };
  if (sub === undefined) return usage('a subcommand is required');
  if (values.config === undefined) return usage('--config FILE is required');
  if (extra.length > 0) return usage(`unexpected argument ${extra[0]}`);
  if (sub !== 'list' && name === undefined) return usage('NAME is required');
  if (name !== undefined && !CLUSTER_NAME.test(name)) return usage(`NAME: expected ${CLUSTER_NAME_RULE}`);
  const configFile = values.config;
  const config = loadGatewayConfig(configFile);
  const logger =
    deps.logger ?? createLogger({ level: 'warn', name: 'keygate-gateway', destination: process.stderr });
  let add: AddRequest | undefined;
  if (sub === 'add') {
    try {
      add = parseAdd(name as string, values, config.server, configFile);
    } catch (e) {
      if (e instanceof UsageError) return usage(e.message);
      throw e;
    }
  } else if (!['list', 'show', 'remove'].includes(sub)) return usage(`unknown subcommand ${sub}`);
  if (sub === 'remove' && values.yes !== true) {
    const ok = (await deps.confirm?.(`remove cluster ${name} and revoke its API key?`)) ?? false;
    if (!ok) return usage('remove revokes the cluster at once: pass --yes to confirm');
  }
  const rt = await openClusterRuntime(config, configFile, logger);
  const opened =
    deps.fleet === undefined && sub !== 'add' && sub !== 'list'
      ? await deps.openFleet?.(config, configFile, sub === 'show')
      : undefined;
  const fleet = deps.fleet ?? opened;
  try {
    if (add !== undefined) return await runAdd(add, rt, out, err);
    if (sub === 'list') {
      const list = await rt.registry.list();
      if (values.json === true) out(JSON.stringify(list, null, 2));
      else for (const line of table(list)) out(line);
      return 0;
    }
    const record = await rt.registry.get(name as string);
    if (record === undefined) throw new KeygateError('CLUSTER_NOT_FOUND', { detail: { name } });
    if (sub === 'show') {
      const nodes = (await fleet?.nodes?.())?.filter((n) => n.cluster === record.name);
      out(JSON.stringify({ ...record, ...(nodes === undefined ? {} : { nodes }) }, null, 2));
      return 0;
    }
    await rt.registry.remove(record.name);
    await fleet?.forgetCluster(record.name);
    err(
      `cluster ${record.name} removed: its identity and API key are deleted, its shims' tokens are refused from now on (${rt.auditNote}).`,
    );
    return audit(rt.audit, 'cluster.remove', record.name, err);
  } finally {
    await opened?.close().catch(() => undefined);
    await rt.close();
  }
}

function parse(args: readonly string[]) {
  return parseArgs({
    args: [...args],
    allowPositionals: true,
    strict: true,
    options: {
      config: { type: 'string' },
      instance: { type: 'string' },
      key: { type: 'string' },
      roles: { type: 'string' },
      ca: { type: 'string' },
      'gateway-url': { type: 'string', multiple: true },
      out: { type: 'string' },
      days: { type: 'string' },
      image: { type: 'string' },
      json: { type: 'boolean' },
      yes: { type: 'boolean' },
    },
  });
}

interface AddRequest extends BundleOptions {
  readonly name: string;
  readonly instance: string;
  readonly crk: string;
  readonly roles: readonly Role[];
  readonly caDir: string;
  readonly days: number;
}

function parseAdd(
  name: string,
  v: ReturnType<typeof parse>['values'],
  server: { readonly host: string; readonly port: number; readonly tls: { readonly clientCaFile: string } },
  configFile: string,
): AddRequest {
  const instance = v.instance;
  if (instance === undefined) throw new UsageError('--instance ID is required');
  if (!isInstanceId(instance)) throw new UsageError(`--instance: expected ${INSTANCE_ID_RULE}`);
  const crk = v.key;
  if (crk === undefined) throw new UsageError('--key CRK_ID is required');
  if (!isKeyId(crk)) throw new UsageError(`--key: expected ${KEY_ID_RULE}`);
  const roles = v.roles === undefined ? DEFAULT_CLUSTER_ROLES : split([v.roles]);
  const instanceRoles = ROLES.filter((r) => !GLOBAL_ROLES.includes(r));
  for (const r of roles)
    if (!(instanceRoles as readonly string[]).includes(r))
      throw new UsageError(`--roles: ${r} is not one of ${instanceRoles.join(', ')}`);
  if (roles.length === 0) throw new UsageError('--roles: at least one role');
  const days = v.days === undefined ? 365 : Number(v.days);
  if (v.days !== undefined && (!/^\d+$/.test(v.days) || days < 1 || days > 36_500))
    throw new UsageError('--days must be a whole number 1..36500');
  let gatewayUrls = split(v['gateway-url'] ?? []);
  if (gatewayUrls.length === 0) {
    const wildcard = ['0.0.0.0', '::', ''].includes(server.host);
    if (wildcard || server.port === 0)
      throw new UsageError(
        `--gateway-url URL is required: ${configFile} listens on ${server.host}:${server.port}, which the shims cannot dial`,
      );
    const host = server.host.includes(':') ? `[${server.host}]` : server.host;
    gatewayUrls = [`https://${host}:${server.port}`];
  }
  for (const u of gatewayUrls) {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new UsageError(`--gateway-url: ${u} is not a URL`);
    }
    if (url.protocol !== 'https:' || url.pathname !== '/' || url.search !== '' || url.hash !== '')
      throw new UsageError(`--gateway-url: ${u}: expected https://HOST:PORT`);
  }
  return {
    name,
    instance,
    crk,
    roles: [...new Set(roles as Role[])],
    caDir: v.ca ?? dirname(server.tls.clientCaFile),
    days,
    gatewayUrls: gatewayUrls.map((u) => u.replace(/\/$/, '')),
    outDir: v.out ?? `keygate-cluster-${name}`,
    image: v.image,
  };
}

async function runAdd(
  a: AddRequest,
  rt: Awaited<ReturnType<typeof openClusterRuntime>>,
  out: Print,
  err: Print,
): Promise<number> {
  const key = await rt.keys.get(a.instance, a.crk, { fresh: true });
  if (key === undefined || key.state === KeyState.DESTROYED)
    throw new KeygateError('KEY_NOT_FOUND_ERR', {
      detail: {
        instance: a.instance,
        keyId: a.crk,
        reason: key === undefined ? 'no such root key' : 'destroyed',
      },
    });
  const certIdentity = clusterCertIdentity(a.name);
  const taken = await rt.registry.taken();
  if (taken.names.has(a.name)) throw new KeygateError('CLUSTER_EXISTS', { detail: { name: a.name } });
  if (taken.certIdentities.has(certIdentity))
    throw new KeygateError('CLUSTER_EXISTS', {
      detail: { name: a.name, reason: `another identity already accepts ${certIdentity}` },
    });
  let ca: Awaited<ReturnType<typeof readCa>>;
  try {
    ca = await readCa(a.caDir);
  } catch (e) {
    err(
      `clusters: cannot read the gateway's CA in ${a.caDir} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}): pass --ca DIR, the folder \`keygate-gateway pki ca --out DIR\` wrote (ca.pem and ca-key.pem)`,
    );
    return 1;
  }
  const issued = await issueLeaf(ca, {
    commonName: a.name,
    usage: 'client',
    uris: [certIdentity],
    days: a.days,
  });
  const x = new X509Certificate(issued.certPem);
  const record: ClusterRecord = {
    name: a.name,
    instance: a.instance,
    crk: a.crk,
    roles: a.roles,
    createdAt: new Date().toISOString(),
    gatewayUrls: a.gatewayUrls,
    cert: {
      serial: x.serialNumber,
      fingerprint256: x.fingerprint256,
      notAfter: issued.notAfter.toISOString(),
    },
  };
  const bundle = await writeClusterBundle(
    a,
    record,
    { caPem: ca.certPem, cert: issued },
    async () => (await rt.registry.add(record)).apiKey,
    () => rt.registry.remove(record.name),
  );
  err(`cluster ${a.name} onboarded (${rt.auditNote}):`);
  out(`  identity:    ${a.name} (certificate ${certIdentity}), roles ${a.instance}: ${a.roles.join(', ')}`);
  out(`  root key:    ${a.crk} on instance ${a.instance}`);
  out(`  certificate: serial ${record.cert.serial}, expires ${record.cert.notAfter}`);
  out(`  gateway:     ${a.gatewayUrls.join(', ')}`);
  out(`  bundle:      ${bundle.dir} (API key in ${bundle.apiKeyFile}; read ${bundle.readme})`);
  return audit(rt.audit, 'cluster.add', a.name, err);
}

/** Appends the change's record (PostgreSQL audit chain); 1 when that fails (the change stands). */
async function audit(
  sink: AuditSink | undefined,
  operation: AuditOperation,
  target: string,
  err: Print,
): Promise<number> {
  if (sink === undefined) return 0;
  try {
    await sink.append({
      time: new Date().toISOString(),
      requestId: randomUUID(),
      subject: changedBy(),
      operation,
      outcome: 'success',
      target,
      latencyMs: 0,
    });
    return 0;
  } catch (e) {
    err(
      `clusters: ${operation} ${target} is done, but its audit record could not be written (${asKeygateError(e).code})`,
    );
    return 1;
  }
}

function split(values: readonly string[]): string[] {
  return values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

function table(list: readonly ClusterRecord[]): string[] {
  if (list.length === 0) return ['no clusters (add one: keygate-gateway clusters add NAME …)'];
  const rows = [
    ['NAME', 'INSTANCE', 'KEY', 'CERT EXPIRES', 'CREATED'],
    ...list.map((c) => [c.name, c.instance, c.crk, c.cert.notAfter.slice(0, 10), c.createdAt.slice(0, 19)]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}
