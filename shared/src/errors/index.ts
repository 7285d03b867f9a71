export { ERROR_CATALOGUE, ERROR_CODES, type ErrorCode, type ErrorSpec, isErrorCode } from './catalogue.js';
export { GrpcStatus, type GrpcStatusName } from './grpc-status.js';
export {
  asKeygateError,
  type ErrorDetail,
  errorSpec,
  isKeygateError,
  KeygateError,
} from './keygate-error.js';
