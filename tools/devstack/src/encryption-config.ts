/**
 * kube-apiserver EncryptionConfiguration for a keygate shim socket. `endpoint` is always written
 * with three slashes (`unix:///abs/path`), since `unix://var/run/x` would parse `var` as a host.
 */
export interface EncryptionConfigOptions {
  /** Absolute path of the shim's UNIX socket. */
  readonly socket: string;
  /** Provider name; it becomes part of the etcd prefix `k8s:enc:kms:v2:<name>:`. No `:` for v2. */
  readonly name?: string;
  /** Per-call timeout kube-apiserver applies (default 3s). */
  readonly timeout?: string;
  readonly resources?: readonly string[];
}

/** KMS v2 (GA since Kubernetes 1.29): the default for new clusters. */
export function encryptionConfigV2(opts: EncryptionConfigOptions): string {
  const name = opts.name ?? 'keygate';
  if (name.includes(':')) throw new RangeError('a KMS v2 provider name must not contain ":"');
  return `# kube-apiserver --encryption-provider-config=<this file>
# KMS v2 through the keygate shim. Reads of data written before keygate fall back to identity.
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [${(opts.resources ?? ['secrets']).join(', ')}]
    providers:
      - kms:
          apiVersion: v2
          name: ${name}
          endpoint: unix://${opts.socket}
          timeout: ${opts.timeout ?? '3s'}
      - identity: {}
`;
}

/** KMS v1 (deprecated): needs `--feature-gates=KMSv1=true` on Kubernetes 1.29 and later. */
export function encryptionConfigV1(opts: EncryptionConfigOptions): string {
  const name = opts.name ?? 'keygate-v1';
  return `# kube-apiserver --encryption-provider-config=<this file>
# KMS v1 is deprecated since Kubernetes 1.28 and off by default since 1.29: kube-apiserver refuses
# this file unless it runs with --feature-gates=KMSv1=true. Prefer encryption-config.yaml (v2).
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [${(opts.resources ?? ['secrets']).join(', ')}]
    providers:
      - kms:
          apiVersion: v1
          name: ${name}
          endpoint: unix://${opts.socket}
          cachesize: 1000
          timeout: ${opts.timeout ?? '3s'}
      - identity: {}
`;
}
