import { type BytesMap, type FieldSpec, type MessageCodec, messageCodec } from './message.js';

/**
 * The KMS v2 and v1beta1 messages of shim/proto/v2/api.proto and shim/proto/v1beta1/api.proto,
 * field for field (names as in the .proto, like proto-loader's keepCase). The .proto files stay
 * the reference; codec/kms-messages.test.ts checks these codecs against protobufjs loading them.
 */
const s = (no: number, name: string): FieldSpec => ({ no, name, kind: 'string' });
const b = (no: number, name: string): FieldSpec => ({ no, name, kind: 'bytes' });
const m = (no: number, name: string): FieldSpec => ({ no, name, kind: 'map' });

export type V2StatusRequest = Record<string, never>;
export interface V2StatusResponse {
  version: string;
  healthz: string;
  key_id: string;
}
export interface V2DecryptRequest {
  ciphertext: Buffer;
  uid: string;
  key_id: string;
  annotations: BytesMap;
}
export interface V2DecryptResponse {
  plaintext: Buffer;
}
export interface V2EncryptRequest {
  plaintext: Buffer;
  uid: string;
}
export interface V2EncryptResponse {
  ciphertext: Buffer;
  key_id: string;
  annotations: BytesMap;
}

export interface V1VersionRequest {
  version: string;
}
export interface V1VersionResponse {
  version: string;
  runtime_name: string;
  runtime_version: string;
}
export interface V1DecryptRequest {
  version: string;
  cipher: Buffer;
}
export interface V1DecryptResponse {
  plain: Buffer;
}
export interface V1EncryptRequest {
  version: string;
  plain: Buffer;
}
export interface V1EncryptResponse {
  cipher: Buffer;
}

export const V2 = {
  StatusRequest: messageCodec<V2StatusRequest>('v2.StatusRequest', []),
  StatusResponse: messageCodec<V2StatusResponse>('v2.StatusResponse', [
    s(1, 'version'),
    s(2, 'healthz'),
    s(3, 'key_id'),
  ]),
  DecryptRequest: messageCodec<V2DecryptRequest>('v2.DecryptRequest', [
    b(1, 'ciphertext'),
    s(2, 'uid'),
    s(3, 'key_id'),
    m(4, 'annotations'),
  ]),
  DecryptResponse: messageCodec<V2DecryptResponse>('v2.DecryptResponse', [b(1, 'plaintext')]),
  EncryptRequest: messageCodec<V2EncryptRequest>('v2.EncryptRequest', [b(1, 'plaintext'), s(2, 'uid')]),
  EncryptResponse: messageCodec<V2EncryptResponse>('v2.EncryptResponse', [
    b(1, 'ciphertext'),
    s(2, 'key_id'),
    m(3, 'annotations'),
  ]),
} as const;

export const V1BETA1 = {
  VersionRequest: messageCodec<V1VersionRequest>('v1beta1.VersionRequest', [s(1, 'version')]),
  VersionResponse: messageCodec<V1VersionResponse>('v1beta1.VersionResponse', [
    s(1, 'version'),
    s(2, 'runtime_name'),
    s(3, 'runtime_version'),
  ]),
  DecryptRequest: messageCodec<V1DecryptRequest>('v1beta1.DecryptRequest', [s(1, 'version'), b(2, 'cipher')]),
  DecryptResponse: messageCodec<V1DecryptResponse>('v1beta1.DecryptResponse', [b(1, 'plain')]),
  EncryptRequest: messageCodec<V1EncryptRequest>('v1beta1.EncryptRequest', [s(1, 'version'), b(2, 'plain')]),
  EncryptResponse: messageCodec<V1EncryptResponse>('v1beta1.EncryptResponse', [b(1, 'cipher')]),
} as const;

/** Every codec by its full protobuf name (the conformance test walks them all). */
export const ALL_MESSAGES: readonly MessageCodec<unknown>[] = [
  ...Object.values(V2),
  ...Object.values(V1BETA1),
] as readonly MessageCodec<unknown>[];
