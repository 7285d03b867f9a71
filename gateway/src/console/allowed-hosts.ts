import { X509Certificate } from 'node:crypto';

/** A host as the console compares it: lower case; an IPv6 address in URL form, without brackets. */
export function normaliseHost(host: string): string {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (!h.includes(':')) return h;
  try {
    return new URL(`https://[${h}]/`).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return h;
  }
}

/** Wildcard listen addresses say nothing about the name a browser uses. */
const ANY_ADDRESS = new Set(['0.0.0.0', '::']);

/**
 * The hosts the console answers to: `console.allowedHosts` when set; else the DNS names and IP
 * addresses of the server certificate (a browser reaching the console by another name gets a
 * certificate error anyway) plus the listen address. `*.example.com` entries match one label.
 */
export function consoleAllowedHosts(
  configured: readonly string[] | undefined,
  serverCertPem: string | Buffer,
  listenHost: string,
): ReadonlySet<string> {
  const hosts = new Set<string>();
  if (configured !== undefined) {
    for (const h of configured) hosts.add(normaliseHost(h));
    return hosts;
  }
  const san = new X509Certificate(serverCertPem).subjectAltName ?? '';
  for (const entry of san.split(/,\s*/)) {
    const m = /^(DNS|IP Address):(.+)$/.exec(entry.trim());
    if (m?.[2] !== undefined) hosts.add(normaliseHost(m[2]));
  }
  const listen = normaliseHost(listenHost);
  if (!ANY_ADDRESS.has(listen)) hosts.add(listen);
  return hosts;
}

/** Whether `host` (normalised) is allowed, directly or by a `*.` entry for its parent domain. */
export function hostAllowed(allowed: ReadonlySet<string>, host: string): boolean {
  if (allowed.has(host)) return true;
  const dot = host.indexOf('.');
  return dot > 0 && allowed.has(`*${host.slice(dot)}`);
}
