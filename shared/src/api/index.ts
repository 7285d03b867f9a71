export {
  codeOfErrorCollection,
  type ErrorCollection,
  errorCollection,
  errorCollectionFor,
} from './errors-body.js';
export { HEADERS, PATHS } from './headers.js';
export {
  APIKEY_GRANT_TYPE,
  type IamError,
  iamError,
  type TokenRequest,
  type TokenResponse,
  tokenRequest,
  tokenResponse,
} from './iam.js';
export {
  INSTANCE_ID_PATTERN,
  INSTANCE_ID_RULE,
  isInstanceId,
  isKeyId,
  KEY_ID_PATTERN,
  KEY_ID_RULE,
} from './ids.js';
export {
  aadList,
  base64String,
  KEY_ACTIONS,
  type KeyAction,
  type KeyVersionRef,
  keyVersionRef,
  type RewrapRequest,
  type RewrapResponse,
  rewrapRequest,
  rewrapResponse,
  type UnwrapRequest,
  type UnwrapResponse,
  unwrapRequest,
  unwrapResponse,
  type WrapRequest,
  type WrapResponse,
  wrapRequest,
  wrapResponse,
} from './key-actions.js';
export {
  COLLECTION_TYPES,
  type CreateKeyRequest,
  createKeyRequest,
  type KeyCollection,
  type KeyResource,
  KeyState,
  type KeyVersionCollection,
  keyCollection,
  keyResource,
  keyVersionCollection,
  LIFECYCLE_ACTIONS,
  type LifecycleAction,
  rotateKeyRequest,
} from './keys.js';
export { encodeShimReport, parseShimReport, SHIM_REPORT_MAX_BYTES, type ShimReport } from './shim-report.js';
