export { ByteReader } from './byte-reader.js';
export {
  decodeShimCiphertext,
  encodeShimCiphertext,
  encodeShimHeader,
  SHIM_FORMAT_V1,
  SHIM_LIMITS,
  SHIM_MAGIC,
  ShimAlg,
  type ShimCiphertext,
  shimAlgSizes,
} from './shim-ciphertext.js';
export {
  decodeWrappedDek,
  encodeWrapHeader,
  encodeWrappedDek,
  isValidKeyVersionId,
  WRAP_FORMAT_V1,
  WRAP_FORMAT_V2,
  WRAP_LIMITS,
  WRAP_MAGIC,
  type WrappedDek,
  wrapAad,
} from './wrapped-dek.js';
