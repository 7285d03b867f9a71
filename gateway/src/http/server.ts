import { Server as HttpServer } from 'node:http';
import { createSecureServer, type Http2SecureServer, type Http2Session } from 'node:http2';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { serve } from '@hono/node-server';
import type { Hono } from 'hono';
import type { ConnectionGuard } from './connection-guard.js';
import type { GatewayEnv } from './env.js';

/** How long a connection may take at each stage before the server closes it. */
export interface ConnectionTimeouts {
  /** The TLS handshake. */
  readonly handshakeTimeoutMs: number;
  /** From a request's first byte to its last header. */
  readonly headersTimeoutMs: number;
  /** A whole request, body included. */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection between requests. */
  readonly keepAliveTimeoutMs: number;
}

export interface HttpsOptions extends ConnectionTimeouts {
  readonly host: string;
  readonly port: number;
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** CA(s) that client certificates must chain to. */
  readonly clientCa: string | Buffer;
  /** Open connections at most (over every source). */
  readonly maxConnections: number;
  /** Per-source limits, checked before any TLS work. */
  readonly guard: ConnectionGuard;
  /** How long close() lets in-flight requests finish before cutting connections. */
  readonly drainMs?: number;
  /**
   * Also serve HTTP/2 (ALPN `h2`) on the same port; clients that offer only HTTP/1.1 (Key Protect
   * SDKs, curl --http1.1) are served as before. The same mTLS, guard and timeouts apply.
   */
  readonly http2?: boolean | undefined;
}

export interface RunningServer {
  readonly server: Server | Http2SecureServer;
  readonly port: number;
  readonly url: string;
  /** Stops accepting, lets requests in flight finish (up to drainMs), then closes connections. */
  close(): Promise<void>;
}

/**
 * Serves `app` over HTTPS with mutual TLS: a client certificate from `clientCa` is required at the
 * handshake (TLS 1.2 minimum). Every stage of a connection has a timeout (handshake, headers,
 * whole request, idle keep-alive), and `guard` turns away a source holding too much before its
 * handshake costs anything, so slow or hostile clients cannot hold sockets or the event loop.
 */
export async function startHttpsServer(app: Hono<GatewayEnv>, opts: HttpsOptions): Promise<RunningServer> {
  const tlsOptions = {
    cert: opts.cert,
    key: opts.key,
    ca: opts.clientCa,
    requestCert: true,
    rejectUnauthorized: true,
    minVersion: 'TLSv1.2' as const,
    handshakeTimeout: opts.handshakeTimeoutMs,
  };
  const http1Options = {
    headersTimeout: opts.headersTimeoutMs,
    requestTimeout: opts.requestTimeoutMs,
    keepAliveTimeout: opts.keepAliveTimeoutMs,
    // Node checks header and request timeouts on this interval (30 s by default).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, opts.headersTimeoutMs / 4)),
  };
  const server = await new Promise<Server | Http2SecureServer>((resolve, reject) => {
    const s = serve(
      opts.http2 === true
        ? {
            fetch: app.fetch,
            hostname: opts.host,
            port: opts.port,
            createServer: createSecureServer,
            serverOptions: { ...tlsOptions, allowHTTP1: true, settings: { maxConcurrentStreams: 256 } },
          }
        : {
            fetch: app.fetch,
            hostname: opts.host,
            port: opts.port,
            createServer,
            serverOptions: { ...tlsOptions, ...http1Options },
          },
      () => resolve(s as Server | Http2SecureServer),
    ) as Server | Http2SecureServer;
    // node:http2 takes none of the HTTP/1.1 options: set before 'listening', where its HTTP/1.1
    // connection checks start with this interval.
    if (opts.http2 === true) Object.assign(s, http1Options);
    s.once('error', reject);
  });
  // Before the TLS server's own listener: a refused connection is closed before its handshake.
  server.prependListener('connection', (socket: Socket) => opts.guard.onConnection(socket));
  // No TLS 1.2 renegotiation: the client certificate of a connection is then fixed for its life,
  // which lets the per-connection peer certificate cache (peer-cert.ts) be sound.
  server.on('secureConnection', (socket: TLSSocket) => {
    opts.guard.onSecure(socket);
    socket.disableRenegotiation();
    (socket as TLSSocket & { keygateNoRenegotiation?: boolean }).keygateNoRenegotiation = true;
  });
  // A failed handshake (no or a foreign client certificate, a timeout): close quietly.
  server.on('tlsClientError', (_err, socket) => socket.destroy());
  server.maxConnections = opts.maxConnections;
  // The HTTP/1.1 limits (for an HTTP/2 server, those of the HTTP/1.1 connections it also serves).
  const h1 = server as Partial<Server>;
  h1.keepAliveTimeout = opts.keepAliveTimeoutMs;
  h1.headersTimeout = opts.headersTimeoutMs;
  h1.requestTimeout = opts.requestTimeoutMs;
  const sessions = opts.http2 === true ? trackSessions(server as Http2SecureServer, opts) : undefined;
  const port = (server.address() as AddressInfo).port;
  // An HTTP/2 server keeps its HTTP/1.1 connections in the same list as http.Server does.
  const closeIdle = () => HttpServer.prototype.closeIdleConnections.call(server);
  const closeAll = () => {
    HttpServer.prototype.closeAllConnections.call(server);
    for (const s of sessions?.open ?? []) s.destroy();
  };
  return {
    server,
    port,
    url: `https://${opts.host.includes(':') ? `[${opts.host}]` : opts.host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(closeAll, opts.drainMs ?? 10_000);
        timer.unref();
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        closeIdle();
        // GOAWAY: streams in flight finish, then each session closes.
        if (sessions !== undefined) {
          sessions.closing = true;
          for (const s of sessions.open) s.close();
        }
      }),
  };
}

/** The open HTTP/2 sessions, for close(); `closing` once close() has begun. */
interface Sessions {
  readonly open: Set<Http2Session>;
  closing: boolean;
}

/**
 * Tracks the HTTP/2 sessions: each idle one is closed after keepAliveTimeoutMs, as HTTP/1.1
 * keep-alive connections are, and one that starts while the server closes (its handshake was
 * under way) is closed at once instead of holding close() for the whole drain time.
 */
function trackSessions(server: Http2SecureServer, opts: ConnectionTimeouts): Sessions {
  const sessions: Sessions = { open: new Set<Http2Session>(), closing: false };
  server.on('session', (session: Http2Session) => {
    sessions.open.add(session);
    session.once('close', () => sessions.open.delete(session));
    session.setTimeout(opts.keepAliveTimeoutMs, () => session.close());
    if (sessions.closing) session.close();
  });
  return sessions;
}
