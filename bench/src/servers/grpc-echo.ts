/**
 * Baseline for S1-S4: a grpc-js server on a UNIX socket with the shim's own proto (v2 and v1beta1
 * KeyManagementService), answering every call with fixed bytes of the same sizes as the shim's
 * answers, and no work at all. Env: ECHO_SOCKET, ECHO_PLAIN_BYTES, ECHO_CIPHER_BYTES, ECHO_KEY_ID.
 */
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  type GrpcObject,
  loadPackageDefinition,
  Server,
  ServerCredentials,
  type ServiceClientConstructor,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

const PROTO_ROOT = fileURLToPath(new URL('../../../shim/proto/', import.meta.url));
const socket = process.env.ECHO_SOCKET ?? '';
const plain = Buffer.alloc(Number(process.env.ECHO_PLAIN_BYTES ?? 32), 7);
const cipher = Buffer.alloc(Number(process.env.ECHO_CIPHER_BYTES ?? 200), 9);
const keyId = process.env.ECHO_KEY_ID ?? 'echo';

const defs = loadSync(['v2/api.proto', 'v1beta1/api.proto'], {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
  includeDirs: [PROTO_ROOT],
});
const root = loadPackageDefinition(defs);
const svc = (pkg: string) =>
  ((root[pkg] as GrpcObject).KeyManagementService as ServiceClientConstructor).service;

type Cb = (err: null, res: object) => void;
const v2: UntypedServiceImplementation = {
  Status: (_call: unknown, cb: Cb) => cb(null, { version: 'v2', healthz: 'ok', key_id: keyId }),
  Encrypt: (_call: unknown, cb: Cb) => cb(null, { ciphertext: cipher, key_id: keyId, annotations: {} }),
  Decrypt: (_call: unknown, cb: Cb) => cb(null, { plaintext: plain }),
};
const v1: UntypedServiceImplementation = {
  Version: (_call: unknown, cb: Cb) =>
    cb(null, { version: 'v1beta1', runtime_name: 'echo', runtime_version: '0' }),
  Encrypt: (_call: unknown, cb: Cb) => cb(null, { cipher }),
  Decrypt: (_call: unknown, cb: Cb) => cb(null, { plain }),
};
rmSync(socket, { force: true });
const server = new Server();
server.addService(svc('v2'), v2);
server.addService(svc('v1beta1'), v1);
server.bindAsync(`unix://${socket}`, ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(String(err));
    process.exit(1);
  }
  console.log(JSON.stringify({ msg: 'grpc echo listening', socket }));
});
process.on('SIGTERM', () => {
  server.forceShutdown();
  rmSync(socket, { force: true });
  process.exit(0);
});
