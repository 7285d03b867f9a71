/** @keygate/shared: what the gateway and the shim both build on. */
export * from './api/index.js';
export * from './clock.js';
export * from './config/index.js';
export * from './crypto/index.js';
export * from './errors/index.js';
export * from './formats/index.js';
export * from './log/index.js';
export * from './metrics/index.js';
