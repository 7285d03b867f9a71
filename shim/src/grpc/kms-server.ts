import { GrpcStatus, KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import type { KmsCore } from '../core/kms-core.js';
import { bindGrpcJs, bindH2, type GrpcServerKind, type Unary } from './bind.js';
import { type KmsOp, kmsHandlers, type RuntimeInfo } from './kms-handlers.js';
import { MalformedRequest, V1BETA1_SERVICE, V2_SERVICE } from './services.js';
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
  /** Which gRPC server serves the socket (default: KEYGATE_GRPC_SERVER=grpc-js|h2, else h2). */
  readonly server?: GrpcServerKind;
}

export interface KmsServer {
  readonly socketPath: string;
  /** Stops accepting calls, lets in-flight calls finish (up to `graceMs`), removes the socket file. */
  close(graceMs?: number): Promise<void>;
}

type Callback = Parameters<Unary>[1];
const noCall = (): void => {};

/** The caller's gRPC deadline in epoch ms (kube-apiserver sends its KMS timeout), or undefined. */
function deadlineOf(d: Date | number): number | undefined {
  const ms = typeof d === 'number' ? d : d.getTime();
  return Number.isFinite(ms) ? ms : undefined;
}

/** A request that is not a valid protobuf message of its type: INVALID_ARGUMENT, fixed text. */
function malformed(req: MalformedRequest): KeygateError {
  return new KeygateError('BAD_BODY_ERR', { detail: { reason: req.message, bytes: req.bytes } });
}

/** Binds both KMS services on the UNIX socket (after probing a stale one) and starts serving. */
export async function startKmsServer(o: KmsServerOptions): Promise<KmsServer> {
  await prepareSocketPath(o.socketPath);
  const h = kmsHandlers(o.core, o.runtime);
  const onCall = o.onCall ?? noCall;
  const { logger, logAllValues } = o;
  // No per-call closures on the synchronous path: everything a call needs is passed along.
  const unary = (rpc: string, op: KmsOp): Unary => {
    const ok = (req: never, res: object, started: number, callback: Callback): void => {
      const seconds = (performance.now() - started) / 1000;
      onCall(rpc, GrpcStatus.OK, seconds);
      // The values (sizes, hashes) are computed only when they are logged.
      if (logAllValues) logger.info({ rpc, ms: seconds * 1000, ...op.values(req, res as never) }, 'call');
      callback(null, res);
    };
    const fail = (err: unknown, started: number, callback: Callback): void => {
      const { error, keygate } = toStatus(err);
      onCall(rpc, error.code, (performance.now() - started) / 1000);
      // Load shedding is counted in the metrics; a warn line per shed call would add load to a burst.
      if (keygate.code === 'OVERLOADED')
        logger.debug({ rpc, grpcCode: error.code, err: keygate.toLog() }, 'call shed');
      else logger.warn({ rpc, grpcCode: error.code, err: keygate.toLog() }, 'call failed');
      callback(error);
    };
    return (call, callback) => {
      const started = performance.now();
      const req = call.request as never;
      let out: object | Promise<object>;
      try {
        if ((req as unknown) instanceof MalformedRequest) throw malformed(req);
        out = op.run(req, deadlineOf(call.getDeadline()));
      } catch (err) {
        fail(err, started, callback);
        return;
      }
      // Synchronous answers (Status, Version, cached Decrypt, Encrypt) go out without a promise hop.
      if (out instanceof Promise) {
        out.then(
          (res: object) => ok(req, res, started, callback),
          (err: unknown) => fail(err, started, callback),
        );
      } else {
        ok(req, out, started, callback);
      }
    };
  };
  const v2 = {
    Status: unary('v2/Status', h.v2Status as KmsOp),
    Encrypt: unary('v2/Encrypt', h.v2Encrypt as KmsOp),
    Decrypt: unary('v2/Decrypt', h.v2Decrypt as KmsOp),
  };
  const v1 = {
    Version: unary('v1beta1/Version', h.v1Version as KmsOp),
    Encrypt: unary('v1beta1/Encrypt', h.v1Encrypt as KmsOp),
    Decrypt: unary('v1beta1/Decrypt', h.v1Decrypt as KmsOp),
  };
  const kind = o.server ?? (process.env.KEYGATE_GRPC_SERVER === 'grpc-js' ? 'grpc-js' : 'h2');
  const transport =
    kind === 'h2'
      ? await bindH2(o.socketPath, [
          [V2_SERVICE, v2],
          [V1BETA1_SERVICE, v1],
        ])
      : await bindGrpcJs(o.socketPath, [
          [V2_SERVICE, v2],
          [V1BETA1_SERVICE, v1],
        ]);
  await setSocketMode(o.socketPath, o.socketMode);
  return {
    socketPath: o.socketPath,
    async close(graceMs = 10_000) {
      await transport.close(graceMs);
      await removeSocketFile(o.socketPath);
    },
  };
}
