import { writeFileSync } from 'node:fs';
import type { PreparedStack } from './prepare-stack.js';

/** Writes the shim's kmsplugin-config.yaml (IBM Cloud Private format plus keygate's section). */
export function writeShimConfig(
  p: PreparedStack,
  file: string,
  o: {
    gatewayUrls: string[];
    socket: string;
    healthzPort: number;
    newDek?: boolean;
    refreshSeconds?: number;
    /** KEYGATE.DEK_MAX_USES and CACHE_SIZE; the shim's defaults when absent. */
    dekMaxUses?: number;
    cacheSize?: number;
    /** More KEYGATE keys, written as they are. */
    extraKeygate?: Readonly<Record<string, string | number>>;
  },
): void {
  const [first, ...rest] = o.gatewayUrls;
  const limits = [
    o.dekMaxUses === undefined ? '' : `  DEK_MAX_USES: ${o.dekMaxUses}\n`,
    o.cacheSize === undefined ? '' : `  CACHE_SIZE: ${o.cacheSize}\n`,
    ...Object.entries(o.extraKeygate ?? {}).map(([k, v]) => `  ${k}: ${v}\n`),
  ].join('');
  writeFileSync(
    file,
    `# keygate shim: IBM Cloud Private kmsplugin-config.yaml, plus keygate's own keys under KEYGATE
SERVER_CONFIG:
  REGION: "local"
  NUM_LEN_BYTES: 32
  CACHE_TIMEOUT_IN_HOURS: 24
  RESTART_DELAY_IN_SECONDS: 3
  UNIX_SOCKET_PATH: "${o.socket}"
  TOKEN_URL: "${first}/identity/token"
  TOKEN_URL_CA_FILE: "${p.pki.caFile}"
  HEALTHZ_PATH: "/healthz"
  HEALTHZ_PORT: ${o.healthzPort}
  NEW_DEK: ${o.newDek ?? false}
  MAX_RETRIES: 2
KP_CONFIG:
  VERSION: "v2"
  CRK_ID: "${p.crkId}"
  URL: "${first}"
  KP_CA_FILE: "${p.pki.caFile}"
  INSTANCE_ID: "${p.instanceId}"
LOGGER:
  LOG_LEVEL: "info"
  LOG_ALL_VALUES: false
KEYGATE:
  API_KEY_FILE: "${p.apiKeyFile}"
  CLIENT_CERT_FILE: "${p.pki.clientCertFile}"
  CLIENT_KEY_FILE: "${p.pki.clientKeyFile}"
  GATEWAY_URLS: ${JSON.stringify(rest)}
  KEY_ID_REFRESH_SECONDS: ${o.refreshSeconds ?? 60}
${limits}`,
  );
}
