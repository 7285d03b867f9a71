export { type ConfigProblem, configError, describeConfigError } from './config-error.js';
export { deepFreeze } from './deep-freeze.js';
export { formatDuration, parseDuration } from './duration.js';
export { type Frozen, issuesToProblems, loadConfigFile, type ParseOptions, parseConfig } from './load.js';
export { resolveSecret, type SecretRef } from './resolve-secret.js';
export { Secret } from './secret.js';
export { readSettingFile, type SettingRef } from './setting-file.js';
