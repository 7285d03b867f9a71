/** @keygate/gateway: start a gateway in-process, or build its key runtime (HSM + store + use cases). */

export type { Clock } from '@keygate/shared';
export {
  fileAudit,
  type GatewayConfig,
  gatewayConfigSchema,
  loadGatewayConfig,
  threadPoolSize,
} from './config.js';
export type { GcmSealed, Hsm, HsmStatus, KeyObjectRef } from './core/keys/hsm.js';
export type { KeyService } from './core/keys/key-service.js';
export type { KeyRecord, KeyStore, KeyVersionRecord } from './core/keys/key-store.js';
export { buildKeyRuntime, type KeyRuntime, type KeyRuntimeOptions } from './key-runtime.js';
export { type GatewayDeps, type RunningGateway, startGateway } from './main.js';
