import { fileURLToPath } from 'node:url';
import { type GrpcObject, loadPackageDefinition, type ServiceClientConstructor } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/** shim/proto, found from both src/grpc and dist/grpc. */
const PROTO_ROOT = fileURLToPath(new URL('../../proto/', import.meta.url));

const LOADER_OPTIONS = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

export interface KmsServices {
  readonly v2: ServiceClientConstructor;
  readonly v1beta1: ServiceClientConstructor;
}

let loaded: KmsServices | undefined;

/** The v2 and v1beta1 KeyManagementService definitions, loaded once from the .proto files. */
export function kmsServices(): KmsServices {
  if (loaded) return loaded;
  const defs = loadSync(['v2/api.proto', 'v1beta1/api.proto'], {
    ...LOADER_OPTIONS,
    includeDirs: [PROTO_ROOT],
  });
  const root = loadPackageDefinition(defs);
  loaded = { v2: service(root, 'v2'), v1beta1: service(root, 'v1beta1') };
  return loaded;
}

function service(root: GrpcObject, pkg: string): ServiceClientConstructor {
  const ns = root[pkg] as GrpcObject | undefined;
  const ctor = ns?.KeyManagementService as ServiceClientConstructor | undefined;
  if (!ctor?.service) throw new Error(`proto package ${pkg} has no KeyManagementService`);
  return ctor;
}
