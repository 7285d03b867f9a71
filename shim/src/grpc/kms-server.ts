import {
  type handleUnaryCall,
  Server,
  ServerCredentials,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { GrpcStatus } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import type { KmsCore } from '../core/kms-core.js';
import { kmsHandlers, type LogValues, type RuntimeInfo } from './kms-handlers.js';
import { kmsServices } from './proto.js';
import { prepareSocketPath, removeSocketFile, setSocketMode } from './socket-file.js';
import { toStatus } from './to-status.js';

export interface KmsServerOptions {
  readonly core: KmsCore;
  readonly socketPath: string;
  readonly socketMode: number;
  readonly logger: Logger;
  /** LOG_ALL_VALUES: log request sizes, ciphertext hashes and key_ids of every call. */
  readonly logAllValues: boolean;
  readonly runtime: RuntimeInfo;
  /** Observer for metrics: the RPC ("v2/Decrypt"), the gRPC status code and the latency in seconds. */
  readonly onCall?: (rpc: string, code: number, seconds: number) => void;
}

export interface KmsServer {
  readonly socketPath: string;
  /** Stops accepting calls, lets in-flight calls finish (up to `graceMs`), removes the socket file. */
  close(graceMs?: number): Promise<void>;
}

type Op = (req: never) => Promise<{ res: object; values: LogValues }> | { res: object; values: LogValues };

/** Binds both KMS services on the UNIX socket (after probing a stale one) and starts serving. */
export async function startKmsServer(o: KmsServerOptions): Promise<KmsServer> {
  await prepareSocketPath(o.socketPath);
  const h = kmsHandlers(o.core, o.runtime);
  const unary = (rpc: string, op: Op): handleUnaryCall<unknown, unknown> => {
    return (call, callback) => {
      const started = performance.now();
      const ok = (out: { res: object; values: LogValues }) => {
        const seconds = (performance.now() - started) / 1000;
        o.onCall?.(rpc, GrpcStatus.OK, seconds);
        // The values (sizes, hashes) are computed only when they are logged.
        if (o.logAllValues) o.logger.info({ rpc, ms: seconds * 1000, ...out.values }, 'call');
        callback(null, out.res);
      };
      const fail = (err: unknown) => {
        const { error, keygate } = toStatus(err);
        o.onCall?.(rpc, error.code ?? GrpcStatus.UNKNOWN, (performance.now() - started) / 1000);
        o.logger.warn({ rpc, grpcCode: error.code, err: keygate.toLog() }, 'call failed');
        callback(error);
      };
      // Synchronous answers (Status, Version) go out without a promise hop.
      let out: ReturnType<Op>;
      try {
        out = op(call.request as never);
      } catch (err) {
        fail(err);
        return;
      }
      if (out instanceof Promise) out.then(ok, fail);
      else ok(out);
    };
  };
  // Channelz keeps per-call statistics nobody reads here: off on the hot path.
  const server = new Server({ 'grpc.enable_channelz': 0 });
  const v2: UntypedServiceImplementation = {
    Status: unary('v2/Status', h.v2Status as Op),
    Encrypt: unary('v2/Encrypt', h.v2Encrypt as Op),
    Decrypt: unary('v2/Decrypt', h.v2Decrypt as Op),
  };
  const v1: UntypedServiceImplementation = {
    Version: unary('v1beta1/Version', h.v1Version as Op),
    Encrypt: unary('v1beta1/Encrypt', h.v1Encrypt as Op),
    Decrypt: unary('v1beta1/Decrypt', h.v1Decrypt as Op),
  };
  const services = kmsServices();
  server.addService(services.v2.service, v2);
  server.addService(services.v1beta1.service, v1);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${o.socketPath}`, ServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    );
  });
  await setSocketMode(o.socketPath, o.socketMode);
  return {
    socketPath: o.socketPath,
    async close(graceMs = 10_000) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      await removeSocketFile(o.socketPath);
    },
  };
}
