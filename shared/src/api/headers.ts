/** HTTP header names of the gateway API (lower case, as Node presents them). */
export const HEADERS = {
  instance: 'bluemix-instance',
  correlationId: 'correlation-id',
  requestId: 'x-request-id',
  authorization: 'authorization',
  /**
   * Milliseconds the caller will still wait for this answer, counted from when it sent the
   * request (an integer). The gateway drops the work once that has passed (DEADLINE_EXCEEDED)
   * instead of spending the HSM and the audit log on an answer nobody reads.
   */
  timeoutMs: 'x-keygate-timeout-ms',
  /** RFC 7240 preferences; Key Protect reads `return=minimal` / `return=representation`. */
  prefer: 'prefer',
  /** On 429 and 503 answers: seconds the client should wait before trying again. */
  retryAfter: 'retry-after',
  /** A shim's report about itself (node, version, key_id, health; shim-report.ts), on refresh calls. */
  shimReport: 'x-keygate-shim-report',
} as const;

/** API paths of the gateway. */
export const PATHS = {
  token: '/identity/token',
  keys: '/api/v2/keys',
  keyAction: (keyId: string, action: string) => `/api/v2/keys/${encodeURIComponent(keyId)}/actions/${action}`,
  key: (keyId: string) => `/api/v2/keys/${encodeURIComponent(keyId)}`,
  keyMetadata: (keyId: string) => `/api/v2/keys/${encodeURIComponent(keyId)}/metadata`,
  keyVersions: (keyId: string) => `/api/v2/keys/${encodeURIComponent(keyId)}/versions`,
  /** keygate's own key resources: GET {keygateKeys}/{id}/rotation (docs/rotation.md). */
  keygateKeys: '/api/v2/keygate/keys',
  keyRotation: (keyId: string) => `/api/v2/keygate/keys/${encodeURIComponent(keyId)}/rotation`,
  keyVersionAction: (keyId: string, versionId: string, action: 'disable' | 'enable') =>
    `/api/v2/keys/${encodeURIComponent(keyId)}/versions/${encodeURIComponent(versionId)}/actions/${action}`,
  /** Identity management (identities in PostgreSQL; docs/api.md "Identities"). */
  identities: '/api/v2/keygate/identities',
  identity: (name: string) => `/api/v2/keygate/identities/${encodeURIComponent(name)}`,
  identityApiKeys: (name: string) => `/api/v2/keygate/identities/${encodeURIComponent(name)}/apikeys`,
  apiKeys: '/api/v2/keygate/apikeys',
  apiKey: (id: string) => `/api/v2/keygate/apikeys/${encodeURIComponent(id)}`,
  /** The fleet view: every shim's latest report and key use per cluster (docs/fleet.md). */
  fleet: '/api/v2/keygate/fleet',
  jwks: '/.well-known/jwks.json',
  healthz: '/healthz',
  readyz: '/readyz',
  metrics: '/metrics',
} as const;
