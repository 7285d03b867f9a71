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

/** The binaries of `b` that are not on disk (build.sh has not run). */
export function missingBinaries(b: Binaries): string[] {
  return [b.kubeApiserver, b.etcd].filter((f) => !existsSync(f));
}
