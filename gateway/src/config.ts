import { INSTANCE_ID_RULE, isInstanceId } from '@keygate/shared/api';
import {
  configError,
  type Frozen,
  loadConfigFile,
  readSettingFile,
  resolveSecret,
  type Secret,
} from '@keygate/shared/config';
import { LOG_LEVELS } from '@keygate/shared/log';
import { z } from 'zod';
import { tokensSchema } from './adapters/jwt/token-settings.js';
import { describeDatabase, postgresSettingsSchema } from './adapters/postgres/pg-settings.js';
import { auditSchema } from './config-audit.js';
import { consoleSchema } from './config-console.js';
import { duration } from './config-duration.js';
import { fleetSchema } from './config-fleet.js';
import { hsmSchema } from './config-hsm.js';
import { rotationSettingsSchema } from './config-rotation.js';
import { identitiesSchema } from './core/auth/identities.js';
import { ROLES } from './core/auth/principal.js';

/** The gateway's YAML config (docs/gateway.md). Strict: an unknown key is an error. */
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
    /** Also serve HTTP/2 (ALPN h2) on the port; HTTP/1.1 clients are served as before. */
    http2: z.boolean().default(false),
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
  hsm: hsmSchema,
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
