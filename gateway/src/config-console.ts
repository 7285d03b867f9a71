import { z } from 'zod';
import { duration } from './config-duration.js';

/** `host:port`, `[v6]:port`; port 0 = any free port (tests). */
const LISTEN = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/;

/** Host and port of `console.listen`. */
export function parseListen(listen: string): { host: string; port: number } | undefined {
  const m = LISTEN.exec(listen);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? '', port };
}

/**
 * `console:` (docs/console.md): the web console on its own HTTPS listener. Absent or without
 * `listen`: off (the default).
 */
export const consoleSchema = z
  .strictObject({
    /** `host:port` of the console's listener (server TLS with `server.tls`'s certificate). */
    listen: z
      .string()
      .refine((v) => parseListen(v) !== undefined, { message: 'host:port, e.g. 127.0.0.1:9443' })
      .optional(),
    /** A session unused this long is ended. */
    idleTimeout: duration(1000, 86_400_000, '15m or 8h').default(15 * 60_000),
    /** A session ends this long after its login, used or not. */
    sessionTtl: duration(1000, 7 * 86_400_000, '15m or 8h').default(8 * 3_600_000),
    /** Failed logins per source address before it is refused for `loginLockout`. */
    maxFailedLogins: z.number().int().min(1).max(1000).default(5),
    loginLockout: duration(1000, 86_400_000, '15m or 8h').default(5 * 60_000),
    /**
     * Host names and IP addresses the console answers to (any other Host: 421). Absent: the DNS
     * names and IP addresses of `server.tls`'s certificate, plus the listen address.
     */
    allowedHosts: z
      .array(
        z
          .string()
          .regex(
            /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|[0-9a-fA-F:.]+)$/,
            {
              message: 'a host name or IP address, without port or brackets',
            },
          ),
      )
      .min(1)
      .optional(),
  })
  .optional();

export type ConsoleSettings = NonNullable<z.output<typeof consoleSchema>>;
