import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, posix } from 'node:path';
import { shimConfigSchema } from '@keygate/shim';
import { parseAllDocuments, parseDocument } from 'yaml';

/** The repository root (this file runs from test/dist/infra/). */
export const ROOT = new URL('../../../', import.meta.url).pathname;

export const repoPath = (rel: string): string => join(ROOT, rel);
export const readRepo = (rel: string): string => readFileSync(repoPath(rel), 'utf8');

/** A parsed YAML value: what Kubernetes objects are made of. */
export type Y = Record<string, unknown>;

/**
 * Parses one YAML document the way Kubernetes does: YAML 1.1 (sigs.k8s.io/yaml), where `0440`
 * is an octal number. Throws on any syntax error or warning.
 */
export function parseYaml(text: string, what: string): unknown {
  const doc = parseDocument(text, { version: '1.1', prettyErrors: true, uniqueKeys: true });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) throw new Error(`${what}: ${problems.map((e) => e.message).join('; ')}`);
  return doc.toJS({ maxAliasCount: 0 });
}

/** Every non-empty document of a multi-document YAML stream (`helm template` output). */
export function parseYamlStream(text: string, what: string): Y[] {
  const out: Y[] = [];
  for (const doc of parseAllDocuments(text, { version: '1.1', prettyErrors: true, uniqueKeys: true })) {
    if (!('errors' in doc)) throw new Error(`${what}: not a YAML stream`);
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) throw new Error(`${what}: ${problems.map((e) => e.message).join('; ')}`);
    const value: unknown = doc.toJS({ maxAliasCount: 0 });
    if (value !== null && value !== undefined) out.push(obj(value, what));
  }
  return out;
}

export function readYaml(rel: string): Y {
  return obj(parseYaml(readRepo(rel), rel), rel);
}

/** Narrows to a plain object, or throws naming `what`. */
export function obj(v: unknown, what: string): Y {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what}: expected a mapping`);
  return v as Y;
}

export function arr(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new Error(`${what}: expected a list`);
  return v;
}

export function str(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new Error(`${what}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

/** `at(o, 'spec.containers.0.name')`: walks mappings and lists, or throws naming the path. */
export function at(o: unknown, path: string): unknown {
  let cur: unknown = o;
  for (const key of path.split('.')) {
    if (Array.isArray(cur)) cur = cur[Number(key)];
    else if (typeof cur === 'object' && cur !== null) cur = (cur as Y)[key];
    else throw new Error(`${path}: no ${key}`);
    if (cur === undefined) throw new Error(`${path}: no ${key}`);
  }
  return cur;
}

/** Checks the fields every Kubernetes object has. */
export function assertK8sObject(o: Y, what: string): { kind: string; apiVersion: string; name: string } {
  const apiVersion = str(o.apiVersion, `${what}.apiVersion`);
  const kind = str(o.kind, `${what}.kind`);
  const name = str(at(o, 'metadata.name'), `${what}.metadata.name`);
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(name)) throw new Error(`${what}: bad name ${name}`);
  if (!/^([a-z0-9.-]+\/)?v\d+((alpha|beta)\d+)?$/.test(apiVersion)) {
    throw new Error(`${what}: bad apiVersion ${apiVersion}`);
  }
  return { kind, apiVersion, name };
}

/** The shim's defaults, from its zod schema (shim/src/config.ts): the one source of truth. */
export function shimDefaults(): {
  socketPath: string;
  healthzPort: number;
  healthzPath: string;
} {
  const cfg = shimConfigSchema.parse({
    SERVER_CONFIG: { TOKEN_URL: 'https://gateway.invalid/identity/token' },
    KP_CONFIG: { CRK_ID: 'crk', URL: 'https://gateway.invalid', INSTANCE_ID: 'instance' },
  });
  return {
    socketPath: cfg.SERVER_CONFIG.UNIX_SOCKET_PATH,
    healthzPort: cfg.SERVER_CONFIG.HEALTHZ_PORT,
    healthzPath: cfg.SERVER_CONFIG.HEALTHZ_PATH,
  };
}

/** /var/run is a symlink to /run on every current distribution: compare paths with it resolved. */
export function hostPath(p: string): string {
  const n = posix.normalize(p);
  return n === '/var/run' || n.startsWith('/var/run/') ? n.slice('/var'.length) : n;
}

/** True when `file` is `dir` or lies inside it. */
export function inside(file: string, dir: string): boolean {
  const f = posix.normalize(file);
  const d = posix.normalize(dir).replace(/\/$/, '');
  return f === d || f.startsWith(`${d}/`);
}

export interface Mount {
  readonly name: string;
  readonly mountPath: string;
  readonly readOnly: boolean;
  readonly subPath?: string;
  readonly subPathExpr?: string;
}

export function mounts(container: Y, what: string): Mount[] {
  return arr(container.volumeMounts ?? [], `${what}.volumeMounts`).map((m, i) => {
    const o = obj(m, `${what}.volumeMounts.${i}`);
    return {
      name: str(o.name, `${what}.volumeMounts.${i}.name`),
      mountPath: str(o.mountPath, `${what}.volumeMounts.${i}.mountPath`),
      readOnly: o.readOnly === true,
      subPath: typeof o.subPath === 'string' ? o.subPath : undefined,
      subPathExpr: typeof o.subPathExpr === 'string' ? o.subPathExpr : undefined,
    };
  });
}

export function volumes(podSpec: Y, what: string): Map<string, Y> {
  const out = new Map<string, Y>();
  for (const [i, v] of arr(podSpec.volumes ?? [], `${what}.volumes`).entries()) {
    const o = obj(v, `${what}.volumes.${i}`);
    out.set(str(o.name, `${what}.volumes.${i}.name`), o);
  }
  return out;
}

/** The uid of a Dockerfile's last `USER uid[:gid]` line. */
export function dockerfileUid(rel: string): number {
  const users = [...readRepo(rel).matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1] ?? '');
  const last = users.at(-1);
  if (last === undefined) throw new Error(`${rel}: no USER`);
  const uid = Number(last.split(':')[0]);
  if (!Number.isInteger(uid)) throw new Error(`${rel}: USER ${last} is not numeric`);
  return uid;
}

/** Where infra/helm/build-helm.sh caches helm; undefined when it was not built here. */
export function cachedHelm(): string | undefined {
  if (process.env.KEYGATE_HELM && existsSync(process.env.KEYGATE_HELM)) return process.env.KEYGATE_HELM;
  const script = readRepo('infra/helm/build-helm.sh');
  const version = process.env.KEYGATE_HELM_VERSION ?? /KEYGATE_HELM_VERSION:-(v[\d.]+)/.exec(script)?.[1];
  const cache = process.env.KEYGATE_TOOLS_CACHE ?? join(homedir(), '.cache', 'keygate-tools');
  const helm = join(cache, `helm-${version}`, 'helm');
  return existsSync(helm) ? helm : undefined;
}

/** `infra/helm/render.sh ARGS` with a cached helm (never builds it: CI does that in .ci/run). */
export function renderChart(args: readonly string[]): { ok: boolean; stdout: string; stderr: string } {
  const r = spawnSync('bash', [repoPath('infra/helm/render.sh'), ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env },
  });
  return { ok: r.status === 0, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}
