import { SHIM_LIMITS, shortHash } from '@keygate/shared';
import { KeygateError } from '@keygate/shared/errors';
import type { KmsCore } from '../core/kms-core.js';

/** The v1beta1 version string apiserver sends and requires back. */
export const V1_VERSION = 'v1beta1';
/** Version reported by Status (apiserver accepts "v2" or "v2beta1"). */
export const V2_VERSION = 'v2';

export interface RuntimeInfo {
  readonly name: string;
  readonly version: string;
}

/** Request values that are safe to log with LOG_ALL_VALUES (sizes and hashes, never plaintext). */
export type LogValues = Record<string, string | number>;

/**
 * The KMS operations, transport-free: parse the request object, call the core, shape the answer.
 * Each returns the response plus log values; `values` is a getter, so the hashes are computed
 * only when LOG_ALL_VALUES logs them (never on the hot path otherwise).
 */
export function kmsHandlers(core: KmsCore, runtime: RuntimeInfo) {
  return {
    v2Status(): { res: { version: string; healthz: string; key_id: string }; values: LogValues } {
      const s = core.status();
      return {
        res: { version: V2_VERSION, healthz: s.healthz, key_id: s.keyId },
        get values(): LogValues {
          return { healthz: s.healthz };
        },
      };
    },

    async v2Encrypt(req: { plaintext?: Buffer; uid?: string }) {
      const plaintext = req.plaintext ?? Buffer.alloc(0);
      const { ciphertext, keyId } = await core.encrypt(plaintext, SHIM_LIMITS.v2MaxCiphertextBytes);
      return {
        res: { ciphertext, key_id: keyId, annotations: {} },
        get values(): LogValues {
          return { uid: req.uid ?? '', size: plaintext.length, ciphertextHash: shortHash(ciphertext), keyId };
        },
      };
    },

    async v2Decrypt(req: { ciphertext?: Buffer; uid?: string; key_id?: string }) {
      const ciphertext = req.ciphertext ?? Buffer.alloc(0);
      const plaintext = await core.decrypt(ciphertext, req.key_id ?? '', SHIM_LIMITS.v2MaxCiphertextBytes);
      return {
        res: { plaintext },
        get values(): LogValues {
          return {
            uid: req.uid ?? '',
            size: ciphertext.length,
            ciphertextHash: shortHash(ciphertext),
            keyId: req.key_id ?? '',
          };
        },
      };
    },

    v1Version(req: { version?: string }) {
      checkV1(req.version);
      return {
        res: { version: V1_VERSION, runtime_name: runtime.name, runtime_version: runtime.version },
        values: {},
      };
    },

    async v1Encrypt(req: { version?: string; plain?: Buffer }) {
      checkV1(req.version);
      const plain = req.plain ?? Buffer.alloc(0);
      const { ciphertext } = await core.encrypt(plain, SHIM_LIMITS.v1MaxCiphertextBytes);
      return {
        res: { cipher: ciphertext },
        get values(): LogValues {
          return { size: plain.length, ciphertextHash: shortHash(ciphertext) };
        },
      };
    },

    async v1Decrypt(req: { version?: string; cipher?: Buffer }) {
      checkV1(req.version);
      const cipher = req.cipher ?? Buffer.alloc(0);
      const plain = await core.decrypt(cipher, undefined, SHIM_LIMITS.v1MaxCiphertextBytes);
      return {
        res: { plain },
        get values(): LogValues {
          return { size: cipher.length, ciphertextHash: shortHash(cipher) };
        },
      };
    },
  };
}

function checkV1(version: string | undefined): void {
  if (version !== V1_VERSION) {
    throw new KeygateError('UNSUPPORTED_VERSION_ERR', { detail: { version: String(version).slice(0, 32) } });
  }
}
