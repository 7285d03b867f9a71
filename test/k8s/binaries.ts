/**
 * Which etcd and kube-apiserver the Kubernetes suite runs: the versions and binaries test/k8s/tools/build.sh
 * builds (cached in ~/.cache/keygate-k8s).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Repository root (this file is test/dist/k8s/binaries.js once built). */
const REPO_ROOT = resolve(new URL('../../../', import.meta.url).pathname);
const TOOLS = join(REPO_ROOT, 'test/k8s/tools');

export interface Versions {
  readonly k8s: string;
  readonly etcd: string;
}

/** The kube-apiserver releases of the matrix (versions.env K8S_VERSIONS), oldest first. */
export function k8sVersions(): string[] {
  const text = readFileSync(join(TOOLS, 'versions.env'), 'utf8');
  const list = /^K8S_VERSIONS="([^"]+)"$/m.exec(text)?.[1]?.split(/\s+/).filter(Boolean) ?? [];
  if (list.length === 0) throw new Error('versions.env has no K8S_VERSIONS');
  return list;
}

/**
 * The versions one suite run uses: KEYGATE_K8S_VERSION (scripts/test-k8s.mjs sets it for each release of
 * the matrix), else the first of K8S_VERSIONS; etcd from ETCD_VERSION or KEYGATE_ETCD_VERSION.
 */
export function versions(): Versions {
  const text = readFileSync(join(TOOLS, 'versions.env'), 'utf8');
  const etcd = /^ETCD_VERSION=(\S+)$/m.exec(text)?.[1];
  if (!etcd) throw new Error('versions.env has no ETCD_VERSION');
  return {
    k8s: process.env.KEYGATE_K8S_VERSION || (k8sVersions()[0] as string),
    etcd: process.env.KEYGATE_ETCD_VERSION || etcd,
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

/** The binaries of `b` that are not on disk (build.sh has not run). */
export function missingBinaries(b: Binaries): string[] {
  return [b.kubeApiserver, b.etcd].filter((f) => !existsSync(f));
}

/** Throws, saying how to build them, when the binaries of `b` are not on disk. */
export function requireBinaries(b: Binaries): void {
  const missing = missingBinaries(b);
  if (missing.length > 0)
    throw new Error(
      `missing ${missing.join(', ')}: run \`bash test/k8s/tools/build.sh\` first (npm run test:k8s does)`,
    );
}
