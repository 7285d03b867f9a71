export {
  ERROR_CATALOGUE,
  ERROR_CODES,
  ERROR_KINDS,
  type ErrorCode,
  type ErrorKind,
  type ErrorSpec,
  errorKind,
  isErrorCode,
} from './catalogue.js';
export { GrpcStatus, type GrpcStatusName } from './grpc-status.js';
export {
  asKeygateError,
  type ErrorDetail,
  errorSpec,
  isKeygateError,
  KeygateError,
} from './keygate-error.js';
