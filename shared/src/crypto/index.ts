export { A256CBC_HS512, a256cbcHs512Decrypt, a256cbcHs512Encrypt, type Sealed } from './a256cbc-hs512.js';
export { AES_256_GCM, aes256GcmDecrypt, aes256GcmEncrypt } from './aes-gcm.js';
export {
  allocSecret,
  constantTimeEqual,
  copySecret,
  secretFromBase64,
  viewOf,
  withZeroized,
  zeroize,
} from './bytes.js';
export { sha256, shortHash } from './digest.js';
export { hkdfSha256 } from './hkdf.js';
export { type Random, seededRandom, systemRandom } from './random.js';
export { deriveDataKey, openShim, openShimBytes, type SealInput, sealShim } from './shim-envelope.js';
