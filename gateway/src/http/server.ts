import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import type { GatewayEnv } from './env.js';

export interface HttpsOptions {
  readonly host: string;
  readonly port: number;
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** CA(s) that client certificates must chain to. */
  readonly clientCa: string | Buffer;
  readonly keepAliveTimeoutMs: number;
  /** How long close() lets in-flight requests finish before cutting connections. */
  readonly drainMs?: number;
}

export interface RunningServer {
  readonly server: Server;
  readonly port: number;
  readonly url: string;
  /** Stops accepting, lets requests in flight finish (up to drainMs), then closes connections. */
  close(): Promise<void>;
}

/**
 * Serves `app` over HTTPS with mutual TLS: a client certificate from `clientCa` is required at the
 * handshake (TLS 1.2 minimum). Long keep-alive, headersTimeout above it.
 */
export async function startHttpsServer(app: Hono<GatewayEnv>, opts: HttpsOptions): Promise<RunningServer> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve(
      {
        fetch: app.fetch,
        hostname: opts.host,
        port: opts.port,
        createServer,
        serverOptions: {
          cert: opts.cert,
          key: opts.key,
          ca: opts.clientCa,
          requestCert: true,
          rejectUnauthorized: true,
          minVersion: 'TLSv1.2',
        },
      },
      () => resolve(s as Server),
    ) as Server;
    s.once('error', reject);
  });
  // No TLS 1.2 renegotiation: the client certificate of a connection is then fixed for its life,
  // which lets the per-connection peer certificate cache (peer-cert.ts) be sound.
  server.on('secureConnection', (socket: TLSSocket) => {
    socket.disableRenegotiation();
    (socket as TLSSocket & { keygateNoRenegotiation?: boolean }).keygateNoRenegotiation = true;
  });
  server.keepAliveTimeout = opts.keepAliveTimeoutMs;
  server.headersTimeout = opts.keepAliveTimeoutMs + 5000;
  server.requestTimeout = 0;
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `https://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), opts.drainMs ?? 10_000);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
