/** @keygate/shim: the Kubernetes KMS plugin. */
export { loadShimSettings, type ShimConfigFile, type ShimSettings, shimConfigSchema } from './config.js';
export { KmsCore, type KmsCoreOptions } from './core/kms-core.js';
export type { GatewayClient, UnwrapResult, WrapResult } from './core/ports.js';
export { UndiciGatewayClient, type UndiciGatewayOptions } from './gateway-client/undici-gateway.js';
export { KmsClient } from './grpc/kms-client.js';
export { type RunningShim, runShim, type ShimDeps, startShim } from './main.js';
