import { resolve, sep } from 'node:path';
import { INSTANCE_ID_RULE, isInstanceId } from '@keygate/shared/api';
import {
  configError,
  type Frozen,
  loadConfigFile,
  parseDuration,
  readSettingFile,
  resolveSecret,
  type Secret,
} from '@keygate/shared/config';
import { LOG_LEVELS } from '@keygate/shared/log';
import { z } from 'zod';
import { tokensSchema } from './adapters/jwt/token-settings.js';
import { HSM_PROFILE_NAMES, HSM_PROFILES, type HsmProfile } from './adapters/pkcs11/profiles.js';
import { describeDatabase, postgresSettingsSchema } from './adapters/postgres/pg-settings.js';
import { consoleSchema } from './config-console.js';
import { fleetSchema } from './config-fleet.js';
import { rotationSettingsSchema } from './config-rotation.js';
import { identitiesSchema } from './core/auth/identities.js';
import { ROLES } from './core/auth/principal.js';

/** The gateway's YAML config (docs/gateway.md). Strict: an unknown key is an error. */
const secretRef = z.strictObject({
  value: z.string().min(1).optional(),
  file: z.string().min(1).optional(),
  env: z.string().min(1).optional(),
});

/** A duration ("30s", "24h" or milliseconds) between `min` and `max` ms, as milliseconds. */
const duration = (min: number, max: number) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    try {
      const ms = parseDuration(v);
      if (ms < min || ms > max) throw new RangeError(`between ${min / 1000}s and ${max / 1000}s`);
      return ms;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `a duration like 30s or 24h (${(err as Error).message})` });
      return z.NEVER;
    }
  });

const pkcs11Hsm = z.strictObject({
  backend: z.literal('pkcs11'),
  module: z.string().min(1),
  /**
   * C_Initialize library parameters (pReserved), for modules configured that way: NSS softoken's
   * `configdir='sql:/path' certPrefix='' keyPrefix='' secmod='' flags=...`. Most modules take none.
   */
  libraryParameters: z.string().min(1).max(4096).optional(),
  tokenLabel: z.string().min(1).max(32),
  pin: secretRef,
  /** Vendor defaults (adapters/pkcs11/profiles.ts, docs/hsm.md): IV mode, key template, sessions. */
  profile: z.enum(HSM_PROFILE_NAMES).default('generic'),
  /** Default: the profile's (4 for generic and softhsm2, 8 for network HSMs). */
  sessions: z.number().int().min(1).max(64).optional(),
  /**
   * 0 (default): crypto calls on the libuv pool (`*Async`), for network HSMs. N: every
   * request-path call on N worker threads holding one session each, for tokens whose calls are
   * CPU work (SoftHSM2, PCIe cards). At most `sessions`.
   */
  workerThreads: z.number().int().min(0).max(16).default(0),
  /**
   * Where GCM IVs come from (default: the profile's): `host` (the host's CSPRNG), `token-random`
   * (C_GenerateRandom on the token, passed in by the host) or `token-appended` (the module
   * generates it and appends it to the ciphertext: Luna in FIPS mode, AWS CloudHSM).
   */
  gcmIv: z.enum(['host', 'token-random', 'token-appended']).optional(),
  /** With token-appended: the IV length the module appends (16 on Luna FIPS, 12 on CloudHSM). */
  gcmIvBytes: z.union([z.literal(12), z.literal(16)]).optional(),
  /** Deprecated: `host` is gcmIv host, `hsm` is gcmIv token-random (not IV generation in the module). */
  ivSource: z.enum(['host', 'hsm']).optional(),
  /**
   * A PKCS#11 call still running after this long is given up: the request answers 503
   * HSM_UNAVAILABLE and the session is abandoned and replaced (a hung network HSM). 0: never.
   */
  operationTimeout: z.union([z.literal(0), duration(100, 600_000)]).default(10_000),
  /**
   * Calls given up as hung (operationTimeout) that have not returned, after which no more are
   * sent: each holds a thread while the module keeps it. Default: `sessions`.
   */
  maxHungCalls: z.number().int().min(1).max(256).optional(),
  /** Development and benchmarks only: add this fixed delay to every HSM call (a network HSM). */
  simulatedLatencyMs: z.number().min(0).max(1000).optional(),
});

const softwareHsm = z.strictObject({
  backend: z.literal('software'),
  keyFile: z.string().min(1),
  masterKeyFile: z.string().min(1),
  /** Development and benchmarks only: add this fixed delay to every HSM call (a network HSM). */
  simulatedLatencyMs: z.number().min(0).max(1000).optional(),
});

/**
 * The PKCS#11 settings with the profile's defaults filled in: `sessions`, the GCM IV setting
 * (`gcmIv: {mode, bytes}`) and whether key generation restricts mechanisms.
 */
function withProfile(h: z.output<typeof pkcs11Hsm>, ctx: z.RefinementCtx) {
  const profile: HsmProfile = HSM_PROFILES[h.profile];
  const { ivSource, gcmIv, gcmIvBytes, sessions, ...rest } = h;
  if (ivSource !== undefined && gcmIv !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['ivSource'],
      message: 'not together with gcmIv (ivSource is its old name)',
    });
  }
  const mode =
    gcmIv ?? (ivSource === 'hsm' ? 'token-random' : ivSource === 'host' ? 'host' : profile.gcmIv.mode);
  if (gcmIvBytes !== undefined && gcmIvBytes !== 12 && mode !== 'token-appended') {
    ctx.addIssue({
      code: 'custom',
      path: ['gcmIvBytes'],
      message: '12 unless gcmIv is token-appended (only a module that appends its IV sets another length)',
    });
  }
  const bytes = mode === 'token-appended' ? (gcmIvBytes ?? profile.gcmIv.bytes) : 12;
  return {
    ...rest,
    sessions: sessions ?? profile.sessions,
    gcmIv: { mode, bytes } as { readonly mode: typeof mode; readonly bytes: number },
    restrictMechanisms: profile.restrictMechanisms,
    requireLocal: profile.requireLocal,
    /** The config still says `ivSource` (a warning at start names its replacement). */
    deprecatedIvSource: ivSource,
  };
}

/** The durable, hash-chained audit log in files (docs/audit.md). */
const fileAuditSchema = z
  .strictObject({
    /** `file` (the default when absent): the log in `dir`; `postgres`: the chain in the database. */
    target: z.literal('file'),
    dir: z.string().min(1),
    signingKeyFile: z.string().min(1),
    /** The audit anchor (docs/audit.md "The anchor"); outside `dir`. Default `<dir>.anchor.json`. */
    anchorFile: z.string().min(1).optional(),
    /** The anchor is rewritten in the background at most this often (and after every checkpoint). */
    anchorInterval: duration(100, 60_000).default(1000),
    /** Also copy every record line to stdout, for log shippers. */
    stdout: z.boolean().default(false),
    checkpointEvery: z.number().int().min(1).max(1_000_000).default(1000),
    checkpointInterval: duration(1000, 3_600_000).default(60_000),
    maxFileBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(16 * 1024 ** 3)
      .default(64 * 1024 * 1024),
    maxFileAge: duration(60_000, 30 * 86_400_000).default(86_400_000),
  })
  .superRefine((a, ctx) => {
    const dir = resolve(a.dir);
    if (a.anchorFile !== undefined && (resolve(a.anchorFile) + sep).startsWith(dir + sep)) {
      ctx.addIssue({
        code: 'custom',
        path: ['anchorFile'],
        message: `a file outside audit.dir (${a.dir}): the anchor must survive the folder being erased`,
      });
    }
  })
  .transform((a) => ({ ...a, anchorFile: a.anchorFile ?? defaultAnchorFile(a.dir) }));

/**
 * The audit chain in PostgreSQL (docs/audit.md "PostgreSQL"): one chain for every replica, in the
 * database of `store.postgres` (required).
 */
const postgresAuditSchema = z.strictObject({
  target: z.literal('postgres'),
  signingKeyFile: z.string().min(1),
  checkpointEvery: z.number().int().min(1).max(1_000_000).default(1000),
  checkpointInterval: duration(1000, 3_600_000).default(60_000),
  /** Named in this replica's start records; default the host name (in Kubernetes, the pod name). */
  replica: z.string().min(1).max(253).optional(),
});

/** `audit:` — `target: file` (the default) or `target: postgres`. */
const auditSchema = z.preprocess(
  (v) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) && !('target' in v)
      ? { ...v, target: 'file' }
      : v,
  z.discriminatedUnion('target', [fileAuditSchema, postgresAuditSchema]),
);

/** `<dir>.anchor.json`: beside the audit folder, not in it. */
function defaultAnchorFile(dir: string): string {
  return `${dir.replace(/\/+$/, '')}.anchor.json`;
}

/** `{ratePerSecond, burst}` of a token bucket. */
const rate = (ratePerSecond: number, burst: number) =>
  z
    .strictObject({
      ratePerSecond: z.number().positive().max(1_000_000),
      burst: z.number().int().min(1).max(1_000_000),
    })
    .default({ ratePerSecond, burst });

/** Load and abuse limits (docs/gateway.md "Limits"). Successful key operations meet only maxInFlight/maxQueued. */
const limitsSchema = z.strictObject({
  /** Key operations that run at once (past authentication). */
  maxInFlight: z.number().int().min(1).max(100_000).default(256),
  /** Key operations that wait for a slot; one more answers 503 OVERLOADED with Retry-After. */
  maxQueued: z.number().int().min(0).max(1_000_000).default(1024),
  tokenPerCertificate: rate(1, 20),
  tokenPerIdentity: rate(10, 100),
  refusalsPerCertificate: rate(5, 50),
  refusalsPerIdentity: rate(20, 200),
  /** Refused requests of one kind: the first per window is written, the rest summed in one record. */
  refusalSummaryWindow: duration(1000, 3_600_000).default(60_000),
});

/**
 * `keys:` — usage limits per root-key version (docs/gateway.md "Usage limits") and re-wrap on
 * unwrap. AES-GCM with random IVs allows at most 2^32 encryptions per key (NIST SP 800-38D).
 */
const keysSchema = z
  .strictObject({
    usageLimit: z
      .strictObject({
        /** Past rotateAt: add a version automatically (rotate) or answer 409 KEY_USAGE_LIMIT_ERR (refuse). */
        policy: z.enum(['rotate', 'refuse']).default('rotate'),
        warnAt: z
          .number()
          .int()
          .min(1)
          .max(2 ** 31)
          .default(2 ** 30),
        rotateAt: z
          .number()
          .int()
          .min(1)
          .max(2 ** 31)
          .default(2_000_000_000),
        /** Encryptions a replica reserves in the store at once (one store write per block). */
        blockSize: z.number().int().min(1).max(1_000_000).default(10_000),
        /** Also rotate a version this old on its next wrap (e.g. 90d); off when absent. */
        rotateAfter: duration(1000, 10 * 366 * 86_400_000).optional(),
      })
      .prefault({}),
    /** Unwrap of an old-version blob also returns it re-wrapped (spends the current version's budget). */
    rewrapOnUnwrap: z.boolean().default(false),
  })
  .superRefine((k, ctx) => {
    if (k.usageLimit.warnAt > k.usageLimit.rotateAt) {
      ctx.addIssue({
        code: 'custom',
        path: ['usageLimit', 'warnAt'],
        message: 'at most usageLimit.rotateAt',
      });
    }
    if (k.usageLimit.blockSize > k.usageLimit.rotateAt) {
      ctx.addIssue({
        code: 'custom',
        path: ['usageLimit', 'blockSize'],
        message: 'at most usageLimit.rotateAt',
      });
    }
  });

const baseSchema = z.strictObject({
  server: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8443),
    tls: z.strictObject({
      certFile: z.string().min(1),
      keyFile: z.string().min(1),
      clientCaFile: z.string().min(1),
    }),
    bodyLimitBytes: z
      .number()
      .int()
      .min(1024)
      .max(10 * 1024 * 1024)
      .default(64 * 1024),
    /** An idle keep-alive connection is closed after this (above the shim's 60 s, so it closes first). */
    keepAliveTimeoutMs: z.number().int().min(1000).max(3_600_000).default(75_000),
    /** A request's headers must arrive within this from its first byte. */
    headersTimeoutMs: z.number().int().min(100).max(300_000).default(10_000),
    /** A whole request, body included, must arrive within this. */
    requestTimeoutMs: z.number().int().min(100).max(600_000).default(30_000),
    /** The TLS handshake must finish within this. */
    handshakeTimeoutMs: z.number().int().min(100).max(120_000).default(10_000),
    /** Open connections at most, from every source together. */
    maxConnections: z.number().int().min(1).max(1_000_000).default(20_000),
    /** Per source (IPv4 address or IPv6 /64), checked before the TLS handshake. */
    perSource: z
      .strictObject({
        connections: z.number().int().min(1).max(1_000_000).default(1024),
        handshakes: z.number().int().min(1).max(100_000).default(64),
        newConnections: rate(200, 400),
      })
      .prefault({}),
    drainMs: z.number().int().min(0).max(600_000).default(10_000),
  }),
  hsm: z
    .discriminatedUnion('backend', [pkcs11Hsm, softwareHsm])
    .transform((h, ctx) => (h.backend === 'pkcs11' ? withProfile(h, ctx) : h)),
  store: z.union([
    z.strictObject({
      file: z.string().min(1),
      /**
       * A missing `file` is an empty store, created at start. Off by default: a missing file is
       * then an error (not ready, 503 STORE_UNAVAILABLE), so an unmounted or replaced volume never
       * reads as "no keys" (which would answer KEY_NOT_FOUND_ERR to every shim).
       */
      createIfMissing: z.boolean().default(false),
    }),
    /** PostgreSQL: keys, identities and (with `audit.target: postgres`) the audit chain, shared by replicas. */
    z.strictObject({ postgres: postgresSettingsSchema }),
  ]),
  access: z
    .strictObject({
      clients: z
        .array(
          z.strictObject({
            identity: z.string().min(1),
            instances: z
              .array(z.string().refine((v) => v === '*' || isInstanceId(v), `'*' or ${INSTANCE_ID_RULE}`))
              .min(1),
            roles: z.array(z.enum(ROLES)).min(1).default(['wrap', 'unwrap', 'rewrap']),
          }),
        )
        .default([]),
    })
    .default({ clients: [] }),
  /** Token mode: service identities with API keys (docs/identity.md). Needs `tokens`. */
  identities: identitiesSchema.optional(),
  tokens: tokensSchema.optional(),
  audit: auditSchema.optional(),
  limits: limitsSchema.prefault({}),
  keys: keysSchema.prefault({}),
  fleet: fleetSchema,
  rotation: rotationSettingsSchema,
  log: z
    .strictObject({
      level: z.enum(LOG_LEVELS).default('info'),
      /**
       * One info line per answered request. Off by default: the audit log already records every
       * key operation, refused requests are logged anyway, and slow ones (>= 1 s) always are.
       */
      requests: z.boolean().default(false),
    })
    .default({ level: 'info', requests: false }),
  console: consoleSchema,
});

/**
 * Token mode (`identities` + `tokens`) and the development certificate allow-list
 * (`access.clients`) are mutually exclusive.
 */
export const gatewayConfigSchema = baseSchema.superRefine((cfg, ctx) => {
  if (cfg.identities !== undefined && cfg.access.clients.length > 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['access', 'clients'],
      message: 'either identities (token mode) or access.clients (certificate allow-list), not both',
    });
  }
  if (cfg.identities !== undefined && cfg.tokens === undefined) {
    ctx.addIssue({ code: 'custom', path: ['tokens'], message: 'a tokens section when identities are set' });
  }
  if (cfg.server.headersTimeoutMs > cfg.server.requestTimeoutMs) {
    ctx.addIssue({
      code: 'custom',
      path: ['server', 'headersTimeoutMs'],
      message: 'at most server.requestTimeoutMs (the headers are part of the request)',
    });
  }
  if (cfg.hsm.backend === 'pkcs11' && cfg.hsm.workerThreads > cfg.hsm.sessions) {
    ctx.addIssue({
      code: 'custom',
      path: ['hsm', 'workerThreads'],
      message: 'at most hsm.sessions (each worker thread holds one session)',
    });
  }
  if (cfg.audit?.target === 'postgres' && !('postgres' in cfg.store)) {
    ctx.addIssue({
      code: 'custom',
      path: ['audit', 'target'],
      message: 'file unless the store is store.postgres (the audit chain lives in that database)',
    });
  }
  // With PostgreSQL, token mode may keep its identities in the database (docs/identity.md).
  if (cfg.tokens !== undefined && cfg.identities === undefined && !('postgres' in cfg.store)) {
    ctx.addIssue({
      code: 'custom',
      path: ['identities'],
      message:
        'identities when a tokens section is set (or store.postgres, which keeps them in the database)',
    });
  }
  if (cfg.tokens !== undefined && cfg.identities === undefined && cfg.access.clients.length > 0) {
    ctx.addIssue({
      code: 'custom',
      path: ['access', 'clients'],
      message: 'either tokens (token mode) or access.clients (certificate allow-list), not both',
    });
  }
});

export type GatewayConfig = Frozen<z.output<typeof gatewayConfigSchema>>;

/** Reads and validates the config file; CONFIG_INVALID names the file and every bad key. */
export function loadGatewayConfig(file: string): GatewayConfig {
  return loadConfigFile(file, gatewayConfigSchema);
}

/** The HSM user PIN from the config's `hsm.pin` (file, env or value). */
export function resolvePin(
  config: GatewayConfig,
  file: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Secret {
  if (config.hsm.backend !== 'pkcs11') throw new RangeError('no PIN for the software backend');
  return resolveSecret(config.hsm.pin, { configFile: file, key: 'hsm.pin' }, env);
}

/** The server certificate, key and client CA PEMs. */
export function readTlsFiles(
  config: GatewayConfig,
  file: string,
): { cert: Buffer; key: Buffer; clientCa: Buffer } {
  const read = (path: string, key: string) => readSettingFile(path, { configFile: file, key });
  const t = config.server.tls;
  return {
    cert: read(t.certFile, 'server.tls.certFile'),
    key: read(t.keyFile, 'server.tls.keyFile'),
    clientCa: read(t.clientCaFile, 'server.tls.clientCaFile'),
  };
}

/** The software backend's 32-byte master key: a file with 64 hex digits or 44 base64 characters. */
export function readMasterKey(path: string, file: string): Buffer {
  const bytes = readSettingFile(path, { configFile: file, key: 'hsm.masterKeyFile' });
  const text = bytes.toString('utf8').trim();
  bytes.fill(0);
  const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length !== 32) {
    throw configError(file, [{ path: 'hsm.masterKeyFile', expected: '32 bytes as 64 hex digits or base64' }]);
  }
  return key;
}

/** Threads the libuv pool needs so every HSM session can run a call at once. */
export function threadPoolSize(config: GatewayConfig): number {
  // Live calls, calls left hanging (at most twice maxHungCalls), and 4 for the rest of Node.
  if (config.hsm.backend !== 'pkcs11') return 4;
  return config.hsm.sessions + 2 * (config.hsm.maxHungCalls ?? config.hsm.sessions) + 4;
}

/** The store's PostgreSQL settings, or undefined for the JSON file store. */
export type PostgresStoreSettings = Extract<GatewayConfig['store'], { postgres: unknown }>['postgres'];
export type FileStoreSettings = Exclude<GatewayConfig['store'], { postgres: unknown }>;
export function postgresStore(config: GatewayConfig): PostgresStoreSettings | undefined {
  return 'postgres' in config.store ? config.store.postgres : undefined;
}

/** The JSON file store's settings, or undefined with PostgreSQL. */
export function fileStore(config: GatewayConfig): FileStoreSettings | undefined {
  return 'postgres' in config.store ? undefined : config.store;
}

/** The file audit log's settings, or undefined without an audit section or with `audit.target: postgres`. */
export type FileAuditSettings = Extract<NonNullable<GatewayConfig['audit']>, { target: 'file' }>;
export function fileAudit(config: GatewayConfig): FileAuditSettings | undefined {
  return config.audit?.target === 'file' ? config.audit : undefined;
}

/** Where the key store is, for log lines: the file, or host:port/database. */
export function describeStore(config: GatewayConfig): string {
  return 'postgres' in config.store
    ? `postgres ${describeDatabase(config.store.postgres)}`
    : config.store.file;
}
