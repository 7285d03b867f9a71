import { SHIM_LIMITS, shortHash } from '@keygate/shared';
import { KeygateError } from '@keygate/shared/errors';
import type { CoreStatus, KmsCore } from '../core/kms-core.js';

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
 * One KMS operation, transport-free. `run` parses the request object, calls the core and shapes
 * the answer; it answers synchronously when it can (Status, Version, cached Decrypt, Encrypt under
 * the current DEK) and returns a promise otherwise. `values` gives what LOG_ALL_VALUES logs; it is
 * called only then, so the hashes are never computed on the hot path otherwise.
 */
export interface KmsOp {
  /** `deadline`: when the caller gives up (epoch ms, from its gRPC deadline), or undefined. */
  run(req: never, deadline?: number): object | Promise<object>;
  values(req: never, res: never): LogValues;
}

const EMPTY = Buffer.alloc(0);
const NO_VALUES: LogValues = Object.freeze({}) as LogValues;

type V2EncryptReq = { plaintext?: Buffer; uid?: string };
type V2EncryptRes = { ciphertext: Buffer; key_id: string; annotations: Record<string, Buffer> };
type V2DecryptReq = { ciphertext?: Buffer; uid?: string; key_id?: string };
type V1Req = { version?: string; plain?: Buffer; cipher?: Buffer };

/** The KMS operations, keyed by RPC. */
export function kmsHandlers(core: KmsCore, runtime: RuntimeInfo) {
  // Status answers the same object until the core's status changes (it returns a new object then).
  let lastStatus: CoreStatus | undefined;
  let statusRes = { version: V2_VERSION, healthz: '', key_id: '' };
  const versionRes = { version: V1_VERSION, runtime_name: runtime.name, runtime_version: runtime.version };
  const v2EncryptRes = (e: { ciphertext: Buffer; keyId: string }): V2EncryptRes => ({
    ciphertext: e.ciphertext,
    key_id: e.keyId,
    annotations: {},
  });
  const plaintextRes = (plaintext: Buffer) => ({ plaintext });
  const cipherRes = (e: { ciphertext: Buffer }) => ({ cipher: e.ciphertext });
  const plainRes = (plain: Buffer) => ({ plain });

  return {
    v2Status: {
      run() {
        const s = core.status();
        if (s !== lastStatus) {
          lastStatus = s;
          statusRes = { version: V2_VERSION, healthz: s.healthz, key_id: s.keyId };
        }
        return statusRes;
      },
      values: (_req: unknown, res: { healthz: string }): LogValues => ({ healthz: res.healthz }),
    },

    v2Encrypt: {
      run(req: V2EncryptReq, deadline?: number) {
        const e = core.encrypt(req.plaintext ?? EMPTY, SHIM_LIMITS.v2MaxCiphertextBytes, deadline);
        return e instanceof Promise ? e.then(v2EncryptRes) : v2EncryptRes(e);
      },
      values: (req: V2EncryptReq, res: V2EncryptRes): LogValues => ({
        uid: req.uid ?? '',
        size: (req.plaintext ?? EMPTY).length,
        ciphertextHash: shortHash(res.ciphertext),
        keyId: res.key_id,
      }),
    },

    v2Decrypt: {
      run(req: V2DecryptReq, deadline?: number) {
        const p = core.decrypt(
          req.ciphertext ?? EMPTY,
          req.key_id ?? '',
          SHIM_LIMITS.v2MaxCiphertextBytes,
          deadline,
        );
        return p instanceof Promise ? p.then(plaintextRes) : { plaintext: p };
      },
      values: (req: V2DecryptReq): LogValues => {
        const ciphertext = req.ciphertext ?? EMPTY;
        return {
          uid: req.uid ?? '',
          size: ciphertext.length,
          ciphertextHash: shortHash(ciphertext),
          keyId: req.key_id ?? '',
        };
      },
    },

    v1Version: {
      run(req: V1Req) {
        checkV1(req.version);
        return versionRes;
      },
      values: (): LogValues => NO_VALUES,
    },

    v1Encrypt: {
      run(req: V1Req, deadline?: number) {
        checkV1(req.version);
        const e = core.encrypt(req.plain ?? EMPTY, SHIM_LIMITS.v1MaxCiphertextBytes, deadline);
        return e instanceof Promise ? e.then(cipherRes) : { cipher: e.ciphertext };
      },
      values: (req: V1Req, res: { cipher: Buffer }): LogValues => ({
        size: (req.plain ?? EMPTY).length,
        ciphertextHash: shortHash(res.cipher),
      }),
    },

    v1Decrypt: {
      run(req: V1Req, deadline?: number) {
        checkV1(req.version);
        const p = core.decrypt(req.cipher ?? EMPTY, undefined, SHIM_LIMITS.v1MaxCiphertextBytes, deadline);
        return p instanceof Promise ? p.then(plainRes) : { plain: p };
      },
      values: (req: V1Req): LogValues => {
        const cipher = req.cipher ?? EMPTY;
        return { size: cipher.length, ciphertextHash: shortHash(cipher) };
      },
    },
  };
}

function checkV1(version: string | undefined): void {
  if (version !== V1_VERSION) {
    throw new KeygateError('UNSUPPORTED_VERSION_ERR', { detail: { version: String(version).slice(0, 32) } });
  }
}
