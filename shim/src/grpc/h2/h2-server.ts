import {
  constants,
  createServer,
  type Http2Server,
  type Http2Session,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { deadlineFrom, encodeGrpcMessage, frame, unaryMessage } from './grpc-wire.js';

/**
 * A minimal gRPC server for unary calls on node:http2 (h2c over a UNIX socket), for the KMS API:
 * application/grpc, 5-byte framing, identity encoding only, the grpc-timeout deadline, status in
 * trailers (or trailers-only for errors), a maximum request size, HTTP/2 PINGs answered by Node,
 * and a graceful drain (GOAWAY, in-flight calls finish) on close. grpc-go (kube-apiserver) and
 * grpc-js clients see the same answers as from grpc-js's server.
 */

const S = { DEADLINE_EXCEEDED: 4, RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, INTERNAL: 13 } as const;

/** The error a handler gives: gRPC code, fixed text and trailer metadata (e.g. keygate-code). */
export interface CallError {
  readonly code: number;
  readonly details: string;
  readonly trailers?: Readonly<Record<string, string>>;
}
export type UnaryCallback = (err: CallError | null, res?: unknown) => void;
export interface UnaryCall {
  readonly request: unknown;
  /** Epoch ms of the caller's deadline, or Infinity. */
  getDeadline(): number;
}
export type UnaryHandler = (call: UnaryCall, callback: UnaryCallback) => void;

/** One method: `decode` never throws (a bad message is a value the handler refuses). */
export interface H2Method {
  readonly decode: (bytes: Buffer) => unknown;
  readonly encode: (res: unknown) => Buffer;
  readonly handler: UnaryHandler;
}

export interface H2ServerOptions {
  /** Largest request message accepted (grpc-go's and grpc-js's default is 4 MiB). */
  readonly maxRequestBytes?: number;
}

export interface H2GrpcServer {
  listen(path: string): Promise<void>;
  /** GOAWAY to every connection, in-flight calls finish (up to `graceMs`, then they are cut). */
  close(graceMs: number): Promise<void>;
}

const noop = (): void => {};
/** The longest delay a Node timer takes as it is. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function h2GrpcServer(methods: ReadonlyMap<string, H2Method>, o: H2ServerOptions = {}): H2GrpcServer {
  const maxBytes = o.maxRequestBytes ?? 4 * 1024 * 1024;
  const sessions = new Set<Http2Session>();
  const server: Http2Server = createServer({
    // As grpc-js: Node's per-session memory check degrades badly when it trips; calls are small.
    maxSessionMemory: Number.MAX_SAFE_INTEGER,
    // A larger receive window than Node's 64 KiB default: v1 Encrypt carries whole objects.
    settings: { initialWindowSize: 1024 * 1024 },
  });
  server.on('session', (s: Http2Session) => {
    sessions.add(s);
    s.on('error', noop);
    s.once('close', () => sessions.delete(s));
  });
  server.on('sessionError', noop);
  server.on('stream', (stream, headers) => onStream(stream, headers, methods, maxBytes));

  return {
    listen(path) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        // An abstract socket ("@name") is a path starting with NUL for node:net.
        server.listen(path.startsWith('@') ? `\0${path.slice(1)}` : path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    },
    async close(graceMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sessions) s.close();
      const timer = setTimeout(() => {
        for (const s of sessions) s.destroy();
      }, graceMs);
      await closed;
      clearTimeout(timer);
    },
  };
}

function onStream(
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  methods: ReadonlyMap<string, H2Method>,
  maxBytes: number,
): void {
  stream.on('error', noop);
  const ct = headers['content-type'];
  if (headers[':method'] !== 'POST' || typeof ct !== 'string' || !ct.startsWith('application/grpc')) {
    // Not gRPC: plain HTTP answers, as the gRPC spec asks (405 / 415).
    const status = headers[':method'] !== 'POST' ? 405 : 415;
    stream.respond({ [constants.HTTP2_HEADER_STATUS]: status }, { endStream: true });
    return;
  }
  const path = headers[':path'] ?? '';
  const method = methods.get(path);
  if (!method) {
    stream.resume();
    trailersOnly(stream, S.UNIMPLEMENTED, `The server does not implement the method ${path.slice(0, 200)}`);
    return;
  }
  const deadline = deadlineFrom(headers['grpc-timeout'], Date.now());
  const chunks: Buffer[] = [];
  let size = 0;
  let refused = false;
  stream.on('data', (chunk: Buffer) => {
    if (refused) return;
    size += chunk.length;
    if (size > maxBytes + 5) {
      refused = true;
      trailersOnly(
        stream,
        S.RESOURCE_EXHAUSTED,
        `Received message larger than max (${size - 5} vs. ${maxBytes})`,
      );
      return;
    }
    chunks.push(chunk);
  });
  stream.on('end', () => {
    if (refused) return;
    const got = unaryMessage(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks), maxBytes);
    if (got.kind === 'error') trailersOnly(stream, got.status, got.text);
    else if (got.kind === 'none') trailersOnly(stream, S.INTERNAL, 'No request message in a unary call');
    else run(stream, method, got.message, deadline);
  });
}

function run(
  stream: ServerHttp2Stream,
  method: H2Method,
  message: Buffer,
  deadline: number | undefined,
): void {
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  const finish = (): boolean => {
    if (done) return false;
    done = true;
    if (timer) clearTimeout(timer);
    return !stream.destroyed && !stream.closed;
  };
  const call: UnaryCall = { request: method.decode(message), getDeadline: () => deadline ?? Infinity };
  const answer: UnaryCallback = (err, res) => {
    if (!finish()) return;
    if (err) {
      trailersOnly(stream, err.code, err.details, err.trailers);
      return;
    }
    let body: Buffer;
    try {
      body = frame(method.encode(res));
    } catch {
      trailersOnly(stream, S.INTERNAL, 'Failed to encode the response');
      return;
    }
    stream.respond(
      { ':status': 200, 'content-type': 'application/grpc', 'grpc-accept-encoding': 'identity' },
      { waitForTrailers: true },
    );
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(body);
  };
  try {
    method.handler(call, answer);
  } catch {
    // A handler bug must not take the process down: the call fails, the server goes on.
    if (finish()) trailersOnly(stream, S.INTERNAL, 'Internal error');
    return;
  }
  if (done) return;
  // Answered later: the caller's deadline ends the call, and so does the caller going away.
  stream.once('close', () => finish());
  // A deadline beyond what a Node timer can wait (2^31-1 ms, ~24.8 days; Node turns a longer delay
  // into 1 ms) is no deadline in practice: no timer, rather than one that fires at once.
  if (deadline !== undefined && deadline - Date.now() <= MAX_TIMER_MS) {
    timer = setTimeout(
      () => {
        if (finish()) trailersOnly(stream, S.DEADLINE_EXCEEDED, 'Deadline exceeded');
      },
      Math.max(0, deadline - Date.now()),
    );
  }
}

/** An error as a trailers-only response: HTTP 200 headers carrying grpc-status, ending the stream. */
function trailersOnly(
  stream: ServerHttp2Stream,
  code: number,
  text: string,
  extra?: Readonly<Record<string, string>>,
): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  const h: OutgoingHttpHeaders = {
    ':status': 200,
    'content-type': 'application/grpc',
    'grpc-status': String(code),
    'grpc-message': encodeGrpcMessage(text),
  };
  if (extra) {
    for (const [k, v] of Object.entries(extra)) {
      if (!k.startsWith('grpc-') && !k.startsWith(':')) h[k] = v;
    }
  }
  stream.respond(h, { endStream: true });
}
