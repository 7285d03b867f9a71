import { stringify } from 'yaml';

/** Where a bundle's files go on each control-plane node (`/etc/keygate/shim/`). */
export const SHIM_DIR = '/etc/keygate/shim';
/** The KMS socket (the static pod and kube-apiserver mount its folder). */
export const SHIM_SOCKET = '/var/run/keygate/kms.sock';
/** Where kube-apiserver reads its EncryptionConfiguration (infra/kubernetes/kubeadm-config.yaml). */
export const ENCRYPTION_CONFIG_DIR = '/etc/kubernetes/enc';
export const DEFAULT_SHIM_IMAGE = 'registry.example.com/keygate/keygate-shim:0.1.0';
const HEALTHZ_PORT = 20358;

/** File names in a bundle. */
export const BUNDLE_FILES = {
  shimConfig: 'kmsplugin-config.yaml',
  ca: 'ca.pem',
  clientCert: 'client.pem',
  clientKey: 'client-key.pem',
  apiKey: 'api-key',
  encryptionConfig: 'encryption-config.yaml',
  manifest: 'keygate-shim.yaml',
  readme: 'README.txt',
} as const;

export interface BundleInput {
  readonly cluster: string;
  readonly instance: string;
  readonly crk: string;
  /** First = KP_CONFIG.URL and the token URL; the rest KEYGATE.GATEWAY_URLS. */
  readonly gatewayUrls: readonly string[];
  readonly caPem: string;
  readonly certPem: string;
  readonly keyPem: string;
  readonly apiKey: string;
  readonly certNotAfter: Date;
  readonly image?: string | undefined;
  /** ISO time written into the comments. */
  readonly createdAt: string;
}

/** One file of the bundle: its name, text and mode (0600 for secrets, else 0644). */
export interface BundleFile {
  readonly name: string;
  readonly text: string;
  readonly mode: number;
}

/** Everything `clusters add` writes for a cluster's control-plane nodes. */
export function buildBundle(b: BundleInput): readonly BundleFile[] {
  const F = BUNDLE_FILES;
  const at = (f: string) => `${SHIM_DIR}/${f}`;
  return [
    { name: F.shimConfig, text: shimConfig(b, at), mode: 0o600 },
    { name: F.ca, text: pem(b.caPem), mode: 0o644 },
    { name: F.clientCert, text: pem(b.certPem), mode: 0o644 },
    { name: F.clientKey, text: pem(b.keyPem), mode: 0o600 },
    { name: F.apiKey, text: `${b.apiKey}\n`, mode: 0o600 },
    { name: F.encryptionConfig, text: encryptionConfig(), mode: 0o644 },
    { name: F.manifest, text: staticPod(b.image ?? DEFAULT_SHIM_IMAGE), mode: 0o644 },
    { name: F.readme, text: readme(b), mode: 0o644 },
  ];
}

function shimConfig(b: BundleInput, at: (f: string) => string): string {
  const [first, ...rest] = b.gatewayUrls;
  if (first === undefined) throw new RangeError('at least one gateway URL');
  const F = BUNDLE_FILES;
  const doc = {
    SERVER_CONFIG: {
      NUM_LEN_BYTES: '32',
      CACHE_TIMEOUT_IN_HOURS: '24',
      RESTART_DELAY_IN_SECONDS: '5',
      UNIX_SOCKET_PATH: SHIM_SOCKET,
      TOKEN_URL: `${first}/identity/token`,
      TOKEN_URL_CA_FILE: at(F.ca),
      HEALTHZ_PATH: '/healthz',
      HEALTHZ_PORT: String(HEALTHZ_PORT),
      NEW_DEK: 'false',
      MAX_RETRIES: '3',
    },
    KP_CONFIG: {
      VERSION: '1',
      CRK_ID: b.crk,
      URL: first,
      KP_CA_FILE: at(F.ca),
      INSTANCE_ID: b.instance,
    },
    LOGGER: { LOG_LEVEL: 'info', LOG_ALL_VALUES: 'false' },
    KEYGATE: {
      CLIENT_CERT_FILE: at(F.clientCert),
      CLIENT_KEY_FILE: at(F.clientKey),
      API_KEY_FILE: at(F.apiKey),
      GATEWAY_URLS: rest,
    },
  };
  return `# keygate shim of cluster ${b.cluster}: the IBM Cloud Private kmsplugin-config.yaml plus keygate's
# KEYGATE section (docs/shim.md). Written by \`keygate-gateway clusters add\` at ${b.createdAt}.
# Copy to ${at(F.shimConfig)} on every control-plane node (owner 10001, mode 0600).
${stringify(doc, { defaultStringType: 'QUOTE_DOUBLE', defaultKeyType: 'PLAIN' })}`;
}

function encryptionConfig(): string {
  return `# kube-apiserver --encryption-provider-config=${ENCRYPTION_CONFIG_DIR}/encryption-config.yaml
# KMS v2 through the keygate shim. Reads of data written before keygate fall back to identity.
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources: [secrets]
    providers:
      - kms:
          apiVersion: v2
          name: keygate
          endpoint: unix://${SHIM_SOCKET}
          timeout: 3s
      - identity: {}
`;
}

/** infra/shim/static-pod.yaml's settings, with the bundle's flat /etc/keygate/shim layout. */
function staticPod(image: string): string {
  const probe = (path: string, periodSeconds: number, timeoutSeconds: number, failureThreshold: number) => ({
    httpGet: { host: '127.0.0.1', port: HEALTHZ_PORT, path, scheme: 'HTTP' },
    periodSeconds,
    timeoutSeconds,
    failureThreshold,
  });
  const security = {
    runAsNonRoot: true,
    runAsUser: 10001,
    runAsGroup: 10001,
    seccompProfile: { type: 'RuntimeDefault' },
  };
  const pod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'keygate-shim',
      namespace: 'kube-system',
      labels: {
        'app.kubernetes.io/name': 'keygate-shim',
        'app.kubernetes.io/component': 'kms-plugin',
        tier: 'control-plane',
      },
    },
    spec: {
      hostNetwork: true,
      dnsPolicy: 'Default',
      priorityClassName: 'system-node-critical',
      priority: 2000001000,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 30,
      securityContext: security,
      containers: [
        {
          name: 'shim',
          image,
          imagePullPolicy: 'IfNotPresent',
          args: ['serve', '--config', `${SHIM_DIR}/${BUNDLE_FILES.shimConfig}`],
          env: [
            {
              name: 'NODE_OPTIONS',
              value: '--max-old-space-size=96 --max-semi-space-size=1 --v8-pool-size=1',
            },
          ],
          securityContext: {
            ...security,
            allowPrivilegeEscalation: false,
            privileged: false,
            readOnlyRootFilesystem: true,
            capabilities: { drop: ['ALL'] },
          },
          resources: { requests: { cpu: '50m', memory: '128Mi' }, limits: { cpu: '1', memory: '192Mi' } },
          startupProbe: probe('/livez', 2, 2, 30),
          livenessProbe: probe('/livez', 10, 3, 6),
          readinessProbe: probe('/healthz', 10, 5, 3),
          volumeMounts: [
            { name: 'socket-dir', mountPath: '/var/run/keygate' },
            { name: 'config', mountPath: SHIM_DIR, readOnly: true },
            { name: 'tmp', mountPath: '/tmp' },
          ],
        },
      ],
      volumes: [
        { name: 'socket-dir', hostPath: { path: '/var/run/keygate', type: 'Directory' } },
        { name: 'config', hostPath: { path: SHIM_DIR, type: 'Directory' } },
        { name: 'tmp', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
      ],
    },
  };
  return `# keygate shim: the KMS plugin static pod, one per control-plane node.
# Copy to /etc/kubernetes/manifests/keygate-shim.yaml on every control-plane node.
# The host network gives the pod the node's host name, which the shim reports as its node name.
# /var/run/keygate must exist, owned by uid 10001 mode 0750 (infra/shim/keygate-shim-tmpfiles.conf).
${stringify(pod)}`;
}

function readme(b: BundleInput): string {
  const F = BUNDLE_FILES;
  return `keygate bundle for cluster ${b.cluster} (instance ${b.instance}, root key ${b.crk})
written by \`keygate-gateway clusters add\` at ${b.createdAt}; client certificate valid until ${b.certNotAfter.toISOString()}.

On EVERY control-plane node of the cluster (docs/clusters.md):

  ${F.shimConfig}, ${F.ca}, ${F.clientCert}, ${F.clientKey}, ${F.apiKey}
      -> ${SHIM_DIR}/   (owner 10001:10001; ${F.clientKey}, ${F.apiKey} and ${F.shimConfig} mode 0600)
  ${F.manifest}
      -> /etc/kubernetes/manifests/keygate-shim.yaml   (kubelet starts the shim)
  ${F.encryptionConfig}
      -> ${ENCRYPTION_CONFIG_DIR}/encryption-config.yaml
         kube-apiserver --encryption-provider-config=${ENCRYPTION_CONFIG_DIR}/encryption-config.yaml
         (mount ${ENCRYPTION_CONFIG_DIR} and /var/run/keygate into kube-apiserver: infra/kubernetes/)

For example, in this folder on the node:

  install -d -m 0750 -o 10001 -g 10001 ${SHIM_DIR} ${ENCRYPTION_CONFIG_DIR}
  install -m 0600 -o 10001 ${F.shimConfig} ${F.clientKey} ${F.apiKey} ${SHIM_DIR}/
  install -m 0644 ${F.ca} ${F.clientCert} ${SHIM_DIR}/
  install -m 0644 ${F.encryptionConfig} ${ENCRYPTION_CONFIG_DIR}/encryption-config.yaml
  install -m 0644 ${F.manifest} /etc/kubernetes/manifests/keygate-shim.yaml

Create /var/run/keygate (uid 10001, mode 0750) before the shim starts. Start the shim first, check
http://127.0.0.1:${HEALTHZ_PORT}/healthz, then change kube-apiserver.

${F.clientKey} and ${F.apiKey} are secrets: copy them over a secure channel and delete this folder
once every node has them. \`keygate-gateway clusters remove ${b.cluster}\` revokes them.
`;
}

function pem(text: string): string {
  return text.endsWith('\n') ? text : `${text}\n`;
}
