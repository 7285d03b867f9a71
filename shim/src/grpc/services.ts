import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { V1BETA1, V2 } from './codec/kms-messages.js';
import type { MessageCodec } from './codec/message.js';

/**
 * grpc-js service definitions of the KMS v2 and v1beta1 KeyManagementService, with the static
 * codecs of codec/kms-messages.ts: no .proto parse and no protobufjs at run time (the shim bundles
 * into one file and starts without reading anything beside it).
 */

/**
 * A request the server could not decode. grpc-js answers INTERNAL to a throwing deserializer, so
 * the server's deserializer returns this instead and the handler answers INVALID_ARGUMENT
 * (BAD_BODY_ERR) with a fixed text.
 */
export class MalformedRequest {
  constructor(
    readonly message: string,
    readonly bytes: number,
  ) {}
}

function unary<Req, Res>(
  pkg: string,
  method: string,
  req: MessageCodec<Req>,
  res: MessageCodec<Res>,
): MethodDefinition<unknown, unknown> {
  return {
    path: `/${pkg}.KeyManagementService/${method}`,
    originalName: method,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m) => req.encode(m as Partial<Req>),
    requestDeserialize: (buf) => {
      try {
        return req.decode(buf);
      } catch (err) {
        return new MalformedRequest((err as Error).message, buf.length);
      }
    },
    responseSerialize: (m) => res.encode(m as Partial<Res>),
    responseDeserialize: (buf) => res.decode(buf),
  };
}

export const V2_SERVICE: ServiceDefinition = {
  Status: unary('v2', 'Status', V2.StatusRequest, V2.StatusResponse),
  Decrypt: unary('v2', 'Decrypt', V2.DecryptRequest, V2.DecryptResponse),
  Encrypt: unary('v2', 'Encrypt', V2.EncryptRequest, V2.EncryptResponse),
};

export const V1BETA1_SERVICE: ServiceDefinition = {
  Version: unary('v1beta1', 'Version', V1BETA1.VersionRequest, V1BETA1.VersionResponse),
  Decrypt: unary('v1beta1', 'Decrypt', V1BETA1.DecryptRequest, V1BETA1.DecryptResponse),
  Encrypt: unary('v1beta1', 'Encrypt', V1BETA1.EncryptRequest, V1BETA1.EncryptResponse),
};
