import type {
  handleUnaryCall,
  Metadata,
  ServiceDefinition,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { type H2Method, h2GrpcServer, type UnaryCallback, type UnaryHandler } from './h2/h2-server.js';

/**
 * The two gRPC servers the KMS services can run on (issue 21, docs/benchmarks.md "Issue 21:
 * transport"): the shim's own on node:http2 (the default) and grpc-js (KEYGATE_GRPC_SERVER=grpc-js,
 * loaded only then). Both get the same handlers and service definitions (services.ts).
 */

/** The gRPC server implementation: the shim's own on node:http2 (h2/h2-server.ts), or grpc-js. */
export type GrpcServerKind = 'grpc-js' | 'h2';

/** A unary handler both servers call: grpc-js's call has the same `request` and `getDeadline()`. */
export type Unary = (
  call: { request: unknown; getDeadline(): Date | number },
  callback: UnaryCallback,
) => void;

export interface BoundServer {
  /** Stops accepting connections, lets in-flight calls finish for up to `graceMs`, then cuts them. */
  close(graceMs: number): Promise<void>;
}

type Bound = readonly [ServiceDefinition, Record<string, Unary>][];

/** The shim's own server on node:http2: one map from path to codec and handler. */
export async function bindH2(socketPath: string, services: Bound): Promise<BoundServer> {
  const methods = new Map<string, H2Method>();
  for (const [def, impl] of services) {
    for (const [name, m] of Object.entries(def)) {
      const handler = impl[name] as UnaryHandler | undefined;
      if (handler)
        methods.set(m.path, { decode: m.requestDeserialize, encode: m.responseSerialize, handler });
    }
  }
  const server = h2GrpcServer(methods);
  await server.listen(socketPath);
  return server;
}

/** grpc-js's server (loaded only when chosen). */
export async function bindGrpcJs(socketPath: string, services: Bound): Promise<BoundServer> {
  const { Metadata, Server, ServerCredentials } = await import('@grpc/grpc-js');
  // Channelz keeps per-call statistics nobody reads here: off on the hot path.
  const server = new Server({ 'grpc.enable_channelz': 0 });
  for (const [def, impl] of services) {
    const adapted: UntypedServiceImplementation = {};
    for (const [name, fn] of Object.entries(impl)) adapted[name] = grpcJsUnary(fn, Metadata);
    server.addService(def, adapted);
  }
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${socketPath}`, ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    );
  });
  return {
    close: (graceMs) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}

/** A unary handler for grpc-js: the error's trailers become grpc-js Metadata. */
function grpcJsUnary(fn: Unary, Meta: typeof Metadata): handleUnaryCall<unknown, unknown> {
  return (call, callback) =>
    fn(call, (err, res) => {
      if (!err) {
        callback(null, res);
        return;
      }
      const metadata = new Meta();
      for (const [k, v] of Object.entries(err.trailers ?? {})) metadata.set(k, v);
      callback({ code: err.code, details: err.details, message: err.details, metadata });
    });
}
