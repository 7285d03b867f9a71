import { readFileSync } from 'node:fs';
import { configError, type Frozen, loadConfigFile, resolveSecret, type Secret } from '@keygate/shared/config';
import { LOG_LEVELS } from '@keygate/shared/log';
import { z } from 'zod';
import { ROLES } from './core/auth/principal.js';

/** The gateway's YAML config (docs/gateway.md). Strict: an unknown key is an error. */
const secretRef = z.strictObject({
  value: z.string().min(1).optional(),
  file: z.string().min(1).optional(),
  env: z.string().min(1).optional(),
});

const pkcs11Hsm = z.strictObject({
  backend: z.literal('pkcs11'),
  module: z.string().min(1),
  tokenLabel: z.string().min(1).max(32),
  pin: secretRef,
  sessions: z.number().int().min(1).max(64).default(4),
  ivSource: z.enum(['host', 'hsm']).default('host'),
});

const softwareHsm = z.strictObject({
  backend: z.literal('software'),
  keyFile: z.string().min(1),
  masterKeyFile: z.string().min(1),
});

export const gatewayConfigSchema = z.strictObject({
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
    keepAliveTimeoutMs: z.number().int().min(1000).max(3_600_000).default(300_000),
    drainMs: z.number().int().min(0).max(600_000).default(10_000),
  }),
  hsm: z.discriminatedUnion('backend', [pkcs11Hsm, softwareHsm]),
  store: z.strictObject({ file: z.string().min(1) }),
  access: z
    .strictObject({
      clients: z
        .array(
          z.strictObject({
            identity: z.string().min(1),
            instances: z.array(z.string().min(1)).min(1),
            roles: z.array(z.enum(ROLES)).min(1).default(['wrap', 'unwrap', 'rewrap']),
          }),
        )
        .default([]),
    })
    .default({ clients: [] }),
  log: z.strictObject({ level: z.enum(LOG_LEVELS).default('info') }).default({ level: 'info' }),
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
  const read = (path: string, key: string) => {
    try {
      return readFileSync(path);
    } catch (cause) {
      throw configError(file, [{ path: key, expected: `a readable file ${path}` }], cause);
    }
  };
  const t = config.server.tls;
  return {
    cert: read(t.certFile, 'server.tls.certFile'),
    key: read(t.keyFile, 'server.tls.keyFile'),
    clientCa: read(t.clientCaFile, 'server.tls.clientCaFile'),
  };
}

/** The software backend's 32-byte master key: a file with 64 hex digits or 44 base64 characters. */
export function readMasterKey(path: string, file: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (cause) {
    throw configError(file, [{ path: 'hsm.masterKeyFile', expected: `a readable file ${path}` }], cause);
  }
  const key = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, 'hex') : Buffer.from(text, 'base64');
  if (key.length !== 32) {
    throw configError(file, [{ path: 'hsm.masterKeyFile', expected: '32 bytes as 64 hex digits or base64' }]);
  }
  return key;
}

/** Threads the libuv pool needs so every HSM session can run a call at once. */
export function threadPoolSize(config: GatewayConfig): number {
  return config.hsm.backend === 'pkcs11' ? config.hsm.sessions + 4 : 4;
}
