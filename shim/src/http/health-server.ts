import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KeygateError } from '@keygate/shared/errors';
import type { Registry } from 'prom-client';

export interface HealthServerOptions {
  readonly host: string;
  readonly port: number;
  /** HEALTHZ_PATH: the deep check. */
  readonly healthzPath: string;
  /** A real round trip through the gateway; throws with a reason when unhealthy. */
  readonly deepCheck: () => Promise<void>;
  /** Shallow liveness: false when a restart would help. */
  readonly live: () => boolean;
  readonly registry: Registry;
  /** How long a passed / failed deep check is reused (default 30 s / 5 s). */
  readonly okTtlMs?: number;
  readonly failTtlMs?: number;
}

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves HEALTHZ_PATH (deep, cached), /livez (shallow) and /metrics on a loopback port. A port
 * another process holds fails with HEALTH_PORT_IN_USE.
 */
export async function startHealthServer(o: HealthServerOptions): Promise<HealthServer> {
  let cached: { ok: boolean; reason: string; until: number } | undefined;
  let running: Promise<{ ok: boolean; reason: string }> | undefined;
  const deep = async (): Promise<{ ok: boolean; reason: string }> => {
    if (cached && Date.now() < cached.until) return cached;
    running ??= o
      .deepCheck()
      .then(
        () => ({ ok: true, reason: 'ok' }),
        (err: unknown) => ({ ok: false, reason: err instanceof Error ? err.message : 'failed' }),
      )
      .then((r) => {
        cached = { ...r, until: Date.now() + (r.ok ? (o.okTtlMs ?? 30_000) : (o.failTtlMs ?? 5000)) };
        running = undefined;
        return r;
      });
    return running;
  };
  const server: Server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    const reply = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method not allowed\n');
    if (path === o.healthzPath) {
      void deep().then((r) => reply(r.ok ? 200 : 503, `${r.reason}\n`));
      return;
    }
    if (path === '/livez') return o.live() ? reply(200, 'ok\n') : reply(503, 'not serving\n');
    if (path === '/metrics') {
      void o.registry.metrics().then(
        (m) => reply(200, m, o.registry.contentType),
        () => reply(500, 'metrics failed\n'),
      );
      return;
    }
    reply(404, 'not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        err.code === 'EADDRINUSE'
          ? new KeygateError('HEALTH_PORT_IN_USE', { cause: err, detail: { host: o.host, port: o.port } })
          : err,
      );
    });
    server.listen(o.port, o.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
