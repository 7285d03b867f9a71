import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import type { ConsoleEnv } from './console-env.js';

export interface ConsoleServerOptions {
  readonly host: string;
  readonly port: number;
  /** The gateway's own server certificate and key (`server.tls`). */
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** The client CA: a browser certificate that chains to it may log in (certificate login). */
  readonly clientCa: string | Buffer;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly handshakeTimeoutMs: number;
}

export interface RunningConsole {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves the console over HTTPS (TLS 1.2 minimum). A client certificate is requested but not
 * required: a browser without one logs in with an API key; one with a certificate that chains
 * to the client CA may log in with it (the app checks `socket.authorized`).
 */
export async function startConsoleServer(
  app: Hono<ConsoleEnv>,
  o: ConsoleServerOptions,
): Promise<RunningConsole> {
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve(
      {
        fetch: app.fetch,
        hostname: o.host,
        port: o.port,
        createServer,
        serverOptions: {
          cert: o.cert,
          key: o.key,
          ca: o.clientCa,
          requestCert: true,
          rejectUnauthorized: false,
          minVersion: 'TLSv1.2',
          handshakeTimeout: o.handshakeTimeoutMs,
          headersTimeout: o.headersTimeoutMs,
          requestTimeout: o.requestTimeoutMs,
          keepAliveTimeout: o.keepAliveTimeoutMs,
        },
      },
      () => resolve(s as Server),
    ) as Server;
    s.once('error', reject);
  });
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  server.maxConnections = 1000;
  const port = (server.address() as AddressInfo).port;
  return {
    url: `https://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
