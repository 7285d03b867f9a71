/**
 * What a shim tells the gateway about itself (the fleet view, docs/fleet.md): sent as the header
 * HEADERS.shimReport on the calls it already makes (its periodic key_id refresh is the heartbeat),
 * never on every Encrypt. No secret is in it. The gateway attributes it to the caller's identity
 * (the cluster) and to the instance and root key of the route it came on.
 *
 * Wire form: `k=v` pairs joined by `;`, values percent-encoded (encodeURIComponent), keys in any
 * order, unknown keys ignored (newer shims may add some). At most SHIM_REPORT_MAX_BYTES.
 */
export interface ShimReport {
  /** The control-plane node (shim setting NODE_NAME, default the host name). */
  readonly node: string;
  /** The shim's package version. */
  readonly version: string;
  /** The key_id the shim gives kube-apiserver now, when it has one. */
  readonly keyId?: string | undefined;
  /** The root-key version behind keyId (what the gateway's last wrap answer named). */
  readonly keyVersion?: string | undefined;
  /** KMS APIs served on the socket: `v2`, `v1beta1`. */
  readonly apis: readonly string[];
  /** DEKs in the shim's cache. */
  readonly cacheSize: number;
  /** `ok`, or the shim's health problem (its /healthz text, one word or short phrase). */
  readonly health: string;
}

export const SHIM_REPORT_MAX_BYTES = 1024;
const NODE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const SHORT = /^[\x20-\x7e]{1,200}$/;
const API = /^(v2|v1beta1)$/;

/** The header value for `r` (throws RangeError when it would exceed SHIM_REPORT_MAX_BYTES). */
export function encodeShimReport(r: ShimReport): string {
  const pairs: [string, string][] = [
    ['node', r.node],
    ['version', r.version],
    ['apis', r.apis.join(',')],
    ['cache', String(r.cacheSize)],
    ['health', r.health],
  ];
  if (r.keyId !== undefined) pairs.push(['keyId', r.keyId]);
  if (r.keyVersion !== undefined) pairs.push(['keyVersion', r.keyVersion]);
  const s = pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join(';');
  if (Buffer.byteLength(s) > SHIM_REPORT_MAX_BYTES) throw new RangeError('shim report too long');
  return s;
}

/** The report in a header value, or undefined when it is missing, too long or malformed. */
export function parseShimReport(value: string | undefined): ShimReport | undefined {
  if (value === undefined || value.length === 0 || value.length > SHIM_REPORT_MAX_BYTES) return undefined;
  const m = new Map<string, string>();
  for (const part of value.split(';')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return undefined;
    let v: string;
    try {
      v = decodeURIComponent(part.slice(eq + 1));
    } catch {
      return undefined;
    }
    m.set(part.slice(0, eq), v);
  }
  const node = m.get('node');
  const version = m.get('version');
  const health = m.get('health');
  const cache = m.get('cache');
  const apis = (m.get('apis') ?? '').split(',').filter((a) => a !== '');
  if (node === undefined || !NODE.test(node)) return undefined;
  if (version === undefined || !SHORT.test(version)) return undefined;
  if (health === undefined || !SHORT.test(health)) return undefined;
  if (cache === undefined || !/^\d{1,9}$/.test(cache)) return undefined;
  if (!apis.every((a) => API.test(a))) return undefined;
  const keyId = m.get('keyId');
  const keyVersion = m.get('keyVersion');
  if (keyId !== undefined && !SHORT.test(keyId)) return undefined;
  if (keyVersion !== undefined && !SHORT.test(keyVersion)) return undefined;
  return { node, version, apis, cacheSize: Number(cache), health, keyId, keyVersion };
}
