import { configError, parseDuration, readSettingFile } from '@keygate/shared/config';
import type { PoolConfig } from 'pg';
import { z } from 'zod';

/** A duration ("5s" or milliseconds) between `min` and `max` ms, as milliseconds. */
const duration = (min: number, max: number) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    try {
      const ms = parseDuration(v);
      if (ms < min || ms > max) throw new RangeError(`between ${min}ms and ${max / 1000}s`);
      return ms;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `a duration like 5s (${(err as Error).message})` });
      return z.NEVER;
    }
  });

/**
 * `store.postgres` (docs/gateway.md "PostgreSQL store"): where the database is, how to log in and
 * how many connections a replica holds. Either `url` or `host` (with `database` and `user`);
 * the password comes from `passwordFile` (never from the config itself).
 */
export const postgresSettingsSchema = z
  .strictObject({
    /** `postgres://user@host:port/database` (a password in it is refused: use passwordFile). */
    url: z.string().min(1).optional(),
    host: z.string().min(1).optional(),
    port: z.number().int().min(1).max(65535).default(5432),
    database: z.string().min(1).optional(),
    user: z.string().min(1).optional(),
    /** A file holding the password (a mounted Secret); trailing newlines are ignored. */
    passwordFile: z.string().min(1).optional(),
    /** TLS to the server: its CA (verify-full), and a client certificate when the server asks. */
    ssl: z
      .strictObject({
        caFile: z.string().min(1),
        certFile: z.string().min(1).optional(),
        keyFile: z.string().min(1).optional(),
        /** Name to verify in the server certificate, when it differs from `host`. */
        serverName: z.string().min(1).optional(),
      })
      .optional(),
    /** Connections per replica for requests (one more is held for change notifications). */
    poolSize: z.number().int().min(1).max(200).default(10),
    connectTimeout: duration(100, 120_000).default(5000),
    /** A statement that runs longer is cancelled (the request answers 503 STORE_UNAVAILABLE). */
    statementTimeout: duration(100, 600_000).default(10_000),
    /** Safety net under the notifications: every replica re-reads what changed this often. */
    reconcileInterval: duration(100, 600_000).default(5000),
    /**
     * `auto`: a replica applies pending schema migrations at start (one at a time, under an
     * advisory lock). `manual`: it refuses to serve on an older schema until an operator runs
     * `keygate-gateway db migrate` (for teams whose gateway role may not change the schema).
     */
    migrate: z.enum(['auto', 'manual']).default('auto'),
  })
  .superRefine((s, ctx) => {
    if ((s.url === undefined) === (s.host === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'either url or host (with database and user)' });
    }
    if (s.host !== undefined && (s.database === undefined || s.user === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['database'], message: 'database and user with host' });
    }
    if (s.url !== undefined) {
      let u: URL | undefined;
      try {
        u = new URL(s.url);
      } catch {
        ctx.addIssue({ code: 'custom', path: ['url'], message: 'a postgres:// or postgresql:// URL' });
      }
      if (u !== undefined && !/^postgres(ql)?:$/.test(u.protocol)) {
        ctx.addIssue({ code: 'custom', path: ['url'], message: 'a postgres:// or postgresql:// URL' });
      }
      if (u !== undefined && (u.username === '' || u.pathname.length < 2)) {
        ctx.addIssue({ code: 'custom', path: ['url'], message: 'a URL naming the user and the database' });
      }
      if (u !== undefined && u.search !== '') {
        ctx.addIssue({
          code: 'custom',
          path: ['url'],
          message: 'a URL without query parameters (TLS goes in ssl:, the pool in poolSize)',
        });
      }
      if (u !== undefined && u.password !== '') {
        ctx.addIssue({
          code: 'custom',
          path: ['url'],
          message: 'a URL without a password (put it in passwordFile: configs are not secrets)',
        });
      }
    }
    if ((s.ssl?.certFile === undefined) !== (s.ssl?.keyFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['ssl'], message: 'certFile and keyFile together' });
    }
  });

export type PostgresSettings = z.output<typeof postgresSettingsSchema>;

/** Where the database is, for log lines and readiness (never the password). */
export function describeDatabase(s: PostgresSettings): string {
  if (s.url !== undefined) {
    const u = new URL(s.url);
    return `${u.hostname}:${u.port || 5432}${u.pathname}`;
  }
  return `${s.host}:${s.port}/${s.database}`;
}

/** The `pg` pool settings: reads the password and TLS files (CONFIG_INVALID naming the key). */
export function poolConfig(
  s: PostgresSettings,
  configFile: string,
  key = 'store.postgres',
): PoolConfig & { statementTimeoutMs: number } {
  const read = (path: string, sub: string) => readSettingFile(path, { configFile, key: `${key}.${sub}` });
  let password: string | undefined;
  if (s.passwordFile !== undefined) {
    const bytes = read(s.passwordFile, 'passwordFile');
    password = bytes.toString('utf8').replace(/[\r\n]+$/, '');
    bytes.fill(0);
    if (password === '') {
      throw configError(configFile, [
        { path: `${key}.passwordFile`, expected: 'a file holding the password' },
      ]);
    }
  }
  const ssl =
    s.ssl === undefined
      ? undefined
      : {
          ca: read(s.ssl.caFile, 'ssl.caFile'),
          ...(s.ssl.certFile === undefined ? {} : { cert: read(s.ssl.certFile, 'ssl.certFile') }),
          ...(s.ssl.keyFile === undefined ? {} : { key: read(s.ssl.keyFile, 'ssl.keyFile') }),
          ...(s.ssl.serverName === undefined ? {} : { servername: s.ssl.serverName }),
          rejectUnauthorized: true,
        };
  return {
    ...(s.url === undefined
      ? { host: s.host, port: s.port, database: s.database, user: s.user }
      : urlParts(s.url)),
    ...(password === undefined ? {} : { password }),
    ...(ssl === undefined ? {} : { ssl }),
    max: s.poolSize,
    connectionTimeoutMillis: s.connectTimeout,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: 'keygate-gateway',
    statementTimeoutMs: s.statementTimeout,
  };
}

/**
 * host, port, database and user of a `postgres://` URL. Parsed here rather than handed to `pg` as
 * a connection string: pg lets the string's (absent) password and TLS mode override ours.
 */
function urlParts(url: string): { host: string; port: number; database: string; user: string } {
  const u = new URL(url);
  return {
    host: decodeURIComponent(u.hostname).replace(/^\[(.*)\]$/, '$1'),
    port: u.port === '' ? 5432 : Number(u.port),
    database: decodeURIComponent(u.pathname.replace(/^\//, '')),
    user: decodeURIComponent(u.username),
  };
}
