import { hostname } from 'node:os';
import {
  configError,
  type Frozen,
  INSTANCE_ID_PATTERN,
  INSTANCE_ID_RULE,
  KEY_ID_PATTERN,
  KEY_ID_RULE,
  LOG_LEVELS,
  type LogLevel,
  loadConfigFile,
  readSettingFile,
  resolveSecret,
  type Secret,
  ShimAlg,
} from '@keygate/shared';
import { z } from 'zod';

import type { TlsFiles } from './gateway-client/undici-gateway.js';

/** A whole number written in decimal, optionally signed and padded (`32`, `"+32"`, `' 032 '`). */
const DECIMAL = /^\s*[+-]?\d+\s*$/;
const decimal = (v: unknown) => (typeof v === 'string' && DECIMAL.test(v) ? Number(v) : v);
/** ICP's files write numbers plain or quoted ("32"); both are read as decimal text. */
const int = (min: number, max: number) => z.preprocess(decimal, z.number().int().min(min).max(max));
/** YAML 1.2 and YAML 1.1 spellings (what Go's yaml.v2, and so ICP-era plug-ins, read), any case. */
const TRUE_WORDS = new Set(['true', 'yes', 'on', 'y']);
const FALSE_WORDS = new Set(['false', 'no', 'off', 'n']);
const bool = z.preprocess((v) => {
  if (typeof v !== 'string') return v;
  const w = v.trim().toLowerCase();
  return TRUE_WORDS.has(w) ? true : FALSE_WORDS.has(w) ? false : v;
}, z.boolean());
const text = z.string().min(1);
const httpsUrl = z.url({ protocol: /^https?$/ });
/** A port as a number, or as ICP's listen address `":8081"`. */
const port = z.preprocess(
  (v) => (typeof v === 'string' ? decimal(v.trim().replace(/^:/, '')) : v),
  z.number().int().min(0).max(65535),
);
const octalMode = z.preprocess(
  (v) => (typeof v === 'string' && /^0?[0-7]{3}$/.test(v) ? Number.parseInt(v, 8) : v),
  z.number().int().min(0).max(0o777),
);
/**
 * KP_CONFIG.VERSION: ICP's only value is 1 ("Do not change this value"); 2 was keygate's. Either is
 * accepted, plain, quoted or as v1/v2; keygate speaks Key Protect API v2 whatever it says.
 */
const kpVersion = z.preprocess(
  (v) =>
    typeof v === 'string' ? v.trim().toLowerCase().replace(/^v/, '') : typeof v === 'number' ? String(v) : v,
  z.enum(['1', '2']),
);

/**
 * The ICP keys whose values are read as the text written: ids stay ids whatever YAML would make
 * of them (`CRK_ID: 0123` is "0123", not 123), and numbers, booleans and VERSION are read from
 * their text by the schema below, the same whether they are written plain or quoted.
 */
export const ICP_KEYS_AS_WRITTEN: readonly string[] = Object.entries({
  SERVER_CONFIG: [
    'REGION',
    'API_KEY',
    'NUM_LEN_BYTES',
    'CACHE_TIMEOUT_IN_HOURS',
    'RESTART_DELAY_IN_SECONDS',
    'HEALTHZ_PORT',
    'NEW_DEK',
    'MAX_RETRIES',
  ],
  KP_CONFIG: ['VERSION', 'CRK_ID', 'INSTANCE_ID'],
  LOGGER: ['LOG_ALL_VALUES'],
}).flatMap(([section, keys]) => keys.map((k) => `${section}.${k}`));

/** The kmsplugin-config.yaml schema: IBM Cloud Private's three sections plus keygate's own. */
export const shimConfigSchema = z.strictObject({
  SERVER_CONFIG: z.strictObject({
    // Not used: an ICP file may leave it empty (`REGION:`), which YAML reads as null.
    REGION: z.preprocess((v) => (v === null ? '' : v), z.string()).default(''),
    NUM_LEN_BYTES: int(16, 64).default(32),
    CACHE_TIMEOUT_IN_HOURS: int(0, 8760).default(24),
    RESTART_DELAY_IN_SECONDS: int(0, 3600).default(5),
    UNIX_SOCKET_PATH: text.default('/var/run/keygate/kms.sock'),
    TOKEN_URL: httpsUrl,
    TOKEN_URL_CA_FILE: text.optional(),
    // `API_KEY:` left empty (null) when the key moved to KEYGATE.API_KEY_FILE or _ENV: no inline key.
    API_KEY: z.preprocess((v) => (v === null ? undefined : v), text.optional()),
    HEALTHZ_PATH: z
      .string()
      .regex(/^\/[A-Za-z0-9._/-]*$/, 'a path starting with /')
      .default('/healthz'),
    HEALTHZ_PORT: port.default(20358),
    NEW_DEK: bool.default(false),
    MAX_RETRIES: int(0, 10).default(3),
  }),
  KP_CONFIG: z.strictObject({
    VERSION: kpVersion.default('1'),
    CRK_ID: z.string().regex(KEY_ID_PATTERN, KEY_ID_RULE),
    URL: httpsUrl,
    KP_CA_FILE: text.optional(),
    INSTANCE_ID: z.string().regex(INSTANCE_ID_PATTERN, INSTANCE_ID_RULE),
  }),
  LOGGER: z
    .strictObject({
      LOG_LEVEL: z
        .preprocess((v) => (typeof v === 'string' ? v.toLowerCase() : v), z.enum(LOG_LEVELS))
        .default('info'),
      LOG_ALL_VALUES: bool.default(false),
    })
    .prefault({}),
  KEYGATE: z
    .strictObject({
      CLIENT_CERT_FILE: text.optional(),
      CLIENT_KEY_FILE: text.optional(),
      GATEWAY_URLS: z.array(httpsUrl).max(8).default([]),
      CACHE_SIZE: int(0, 1_000_000).default(1000),
      /**
       * At most 2^24: each use is one AES encryption with a random IV under the DEK's payload key
       * (A256GCM allows 2^32 per key; NIST SP 800-38D), so the cap stays far below that.
       */
      DEK_MAX_USES: int(1, 2 ** 24).default(2 ** 21),
      DEK_MAX_AGE_HOURS: int(1, 8760).default(168),
      SOCKET_MODE: octalMode.default(0o600),
      DEADLINE_MS: int(100, 60_000).default(2500),
      MAX_GATEWAY_CALLS: int(1, 10_000).default(64),
      ALGORITHM: z.enum(['A256CBC-HS512', 'A256GCM']).default('A256CBC-HS512'),
      KEY_ID_REFRESH_SECONDS: int(1, 3600).default(60),
      API_KEY_FILE: text.optional(),
      API_KEY_ENV: text.optional(),
      BREAKER_FAILURES: int(1, 100).default(3),
      BREAKER_OPEN_SECONDS: int(1, 3600).default(5),
      /** Offer HTTP/2 to the gateway (ALPN; a gateway that serves only HTTP/1.1 gets that). */
      GATEWAY_HTTP2: bool.default(false),
      /** HTTP/1.1 keep-alive connections per gateway URL at most. */
      GATEWAY_CONNECTIONS: int(1, 1024).default(16),
      SHUTDOWN_GRACE_SECONDS: int(0, 600).default(10),
    })
    .prefault({}),
});
export type ShimConfigFile = Frozen<z.output<typeof shimConfigSchema>>;

/**
 * Everything the shim needs, validated, with secrets and PEM files read and units converted (ms,
 * bytes, counts, booleans). The program reads these fields; `raw` keeps the file as validated,
 * under its ICP names, for tests and diagnostics. The schema above is the only layer of defaults.
 */
export interface ShimSettings {
  readonly file: string;
  readonly raw: ShimConfigFile;
  readonly logLevel: LogLevel;
  /** LOGGER.LOG_ALL_VALUES: log uid, sizes and hashes of every call. */
  readonly logAllValues: boolean;
  readonly instanceId: string;
  readonly crkId: string;
  readonly alg: ShimAlg;
  readonly apiKey: Secret;
  readonly tokenUrl: string;
  /** KP_CONFIG.URL first, then KEYGATE.GATEWAY_URLS not already named. */
  readonly gatewayUrls: readonly string[];
  readonly tls: TlsFiles;
  readonly tokenTls: TlsFiles;
  /** MAX_RETRIES: attempts after the first one. */
  readonly maxRetries: number;
  /** DEADLINE_MS: the whole time one wrap or unwrap may take. */
  readonly deadlineMs: number;
  readonly breaker: { readonly failureThreshold: number; readonly openMs: number };
  /** KEYGATE.GATEWAY_HTTP2: offer HTTP/2 to the gateway. */
  readonly gatewayHttp2: boolean;
  /** KEYGATE.GATEWAY_CONNECTIONS: HTTP/1.1 keep-alive connections per gateway URL. */
  readonly gatewayConnections: number;
  /** MAX_GATEWAY_CALLS: gateway calls in flight at once. */
  readonly maxGatewayCalls: number;
  /** NUM_LEN_BYTES: size of a new DEK. */
  readonly dekBytes: number;
  /** NEW_DEK: wrap a fresh DEK for every Encrypt. */
  readonly newDekPerEncrypt: boolean;
  readonly dekLimits: { readonly maxUses: number; readonly maxAgeMs: number };
  readonly cacheSize: number;
  /** CACHE_TIMEOUT_IN_HOURS in ms; 0 disables the DEK cache. */
  readonly cacheTtlMs: number;
  readonly keyIdRefreshMs: number;
  readonly socketPath: string;
  readonly socketMode: number;
  readonly healthzPort: number;
  readonly healthzPath: string;
  readonly restartDelayMs: number;
  readonly shutdownGraceMs: number;
  /** The control-plane node this shim runs on, for the fleet view: env NODE_NAME, else the host name. */
  readonly nodeName: string;
}

/** What a node name may be (the shim report's rule: a DNS-style name of at most 253 characters). */
export const NODE_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

const HOUR_MS = 3_600_000;

/**
 * Reads and validates kmsplugin-config.yaml; resolves the API key (inline, file or environment) and
 * reads the certificate files. Every problem is CONFIG_INVALID naming the file and the key.
 */
export function loadShimSettings(
  file: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): ShimSettings {
  const raw = loadConfigFile(file, shimConfigSchema, { asWritten: ICP_KEYS_AS_WRITTEN });
  const s = raw.SERVER_CONFIG;
  const k = raw.KEYGATE;
  const sources = [
    ['SERVER_CONFIG.API_KEY', s.API_KEY],
    ['KEYGATE.API_KEY_FILE', k.API_KEY_FILE],
    ['KEYGATE.API_KEY_ENV', k.API_KEY_ENV],
  ].filter(([, v]) => v !== undefined);
  if (sources.length !== 1) {
    throw configError(file, [
      {
        path: sources.length === 0 ? 'SERVER_CONFIG.API_KEY' : sources.map(([p]) => p).join(', '),
        expected: 'exactly one of SERVER_CONFIG.API_KEY, KEYGATE.API_KEY_FILE or KEYGATE.API_KEY_ENV',
      },
    ]);
  }
  const keyPath = String(sources[0]?.[0]);
  const apiKey = resolveSecret(
    { value: s.API_KEY, file: k.API_KEY_FILE, env: k.API_KEY_ENV },
    { configFile: file, key: keyPath },
    env,
  );
  if ((k.CLIENT_CERT_FILE === undefined) !== (k.CLIENT_KEY_FILE === undefined)) {
    throw configError(file, [
      {
        path: k.CLIENT_CERT_FILE ? 'KEYGATE.CLIENT_KEY_FILE' : 'KEYGATE.CLIENT_CERT_FILE',
        expected: 'both CLIENT_CERT_FILE and CLIENT_KEY_FILE, or neither',
      },
    ]);
  }
  const pem = (path: string | undefined, key: string): Buffer | undefined =>
    path === undefined ? undefined : readSettingFile(path, { configFile: file, key });
  const cert = pem(k.CLIENT_CERT_FILE, 'KEYGATE.CLIENT_CERT_FILE');
  const key = pem(k.CLIENT_KEY_FILE, 'KEYGATE.CLIENT_KEY_FILE');
  const ca = pem(raw.KP_CONFIG.KP_CA_FILE, 'KP_CONFIG.KP_CA_FILE');
  const nodeName = env.NODE_NAME === undefined || env.NODE_NAME === '' ? hostname() : env.NODE_NAME;
  if (!NODE_NAME_PATTERN.test(nodeName)) {
    throw configError(file, [
      {
        path: env.NODE_NAME ? 'NODE_NAME (environment)' : 'NODE_NAME (unset: the host name)',
        expected: 'a node name: letters, digits, dot, dash or underscore, at most 253 characters',
      },
    ]);
  }
  const tokenCa = pem(s.TOKEN_URL_CA_FILE, 'SERVER_CONFIG.TOKEN_URL_CA_FILE');
  return Object.freeze({
    file,
    raw,
    logLevel: raw.LOGGER.LOG_LEVEL,
    logAllValues: raw.LOGGER.LOG_ALL_VALUES,
    instanceId: raw.KP_CONFIG.INSTANCE_ID,
    crkId: raw.KP_CONFIG.CRK_ID,
    alg: k.ALGORITHM === 'A256GCM' ? ShimAlg.A256GCM : ShimAlg.A256CBC_HS512,
    apiKey,
    tokenUrl: s.TOKEN_URL,
    gatewayUrls: [raw.KP_CONFIG.URL, ...k.GATEWAY_URLS.filter((u) => u !== raw.KP_CONFIG.URL)],
    tls: compact({ ca, cert, key }),
    tokenTls: compact({ ca: tokenCa, cert, key }),
    maxRetries: s.MAX_RETRIES,
    deadlineMs: k.DEADLINE_MS,
    breaker: Object.freeze({ failureThreshold: k.BREAKER_FAILURES, openMs: k.BREAKER_OPEN_SECONDS * 1000 }),
    gatewayHttp2: k.GATEWAY_HTTP2,
    gatewayConnections: k.GATEWAY_CONNECTIONS,
    maxGatewayCalls: k.MAX_GATEWAY_CALLS,
    dekBytes: s.NUM_LEN_BYTES,
    newDekPerEncrypt: s.NEW_DEK,
    dekLimits: Object.freeze({ maxUses: k.DEK_MAX_USES, maxAgeMs: k.DEK_MAX_AGE_HOURS * HOUR_MS }),
    cacheSize: k.CACHE_SIZE,
    cacheTtlMs: s.CACHE_TIMEOUT_IN_HOURS * HOUR_MS,
    keyIdRefreshMs: k.KEY_ID_REFRESH_SECONDS * 1000,
    socketPath: s.UNIX_SOCKET_PATH,
    socketMode: k.SOCKET_MODE,
    healthzPort: s.HEALTHZ_PORT,
    healthzPath: s.HEALTHZ_PATH,
    restartDelayMs: s.RESTART_DELAY_IN_SECONDS * 1000,
    shutdownGraceMs: k.SHUTDOWN_GRACE_SECONDS * 1000,
    nodeName,
  });
}

function compact<T extends Record<string, Buffer | undefined>>(o: T): { [K in keyof T]?: Buffer } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as {
    [K in keyof T]?: Buffer;
  };
}
