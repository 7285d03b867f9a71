import { allocSecret, copySecret, type Random } from '@keygate/shared/crypto';
import { isKeygateError, KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import type { GcmSealed } from '../../core/keys/hsm.js';
import {
  type GcmIvSetting,
  GcmOutputError,
  gcm,
  HOST_IV,
  IV_BYTES,
  splitAppended,
  TAG_BYTES,
} from './gcm-mechanism.js';
import type { Pkcs11Token } from './pkcs11-token.js';
import type { SessionPool } from './session-pool.js';
import type { Pkcs11WorkerLanes } from './worker-lanes.js';

type Handle = Buffer;

/** The AAD of the round trip that tells a wrong tag from a failing HSM (see #afterGeneralError). */
const SELF_CHECK_AAD = Buffer.from('keygate:self-check');

export interface GcmCallsOptions {
  readonly token: Pkcs11Token;
  readonly pool: SessionPool;
  /** Present with `workerThreads` > 0: every call goes to a worker thread. */
  readonly lanes: Pkcs11WorkerLanes | undefined;
  /** Where GCM IVs come from; default host, 12 bytes. */
  readonly gcmIv: GcmIvSetting | undefined;
  readonly random: Random;
  readonly logger: Logger;
  /** The checked (and cached) handle of a root-key object. */
  findKey(session: Handle, label: string): Handle;
  /** Drops a cached handle that turned out stale. */
  forgetKey(label: string): void;
}

/**
 * One AES-GCM encryption or decryption under a root-key object: on a worker lane, or as
 * C_EncryptAsync/C_DecryptAsync on a pooled session (the libuv pool), with the token's IV
 * convention (gcm-mechanism.ts). Pkcs11Hsm is the port around it.
 */
export class GcmCalls {
  constructor(private readonly o: GcmCallsOptions) {}

  /** The IV length of what encrypt() returns (the wrapped DEK's header announces it). */
  get ivBytes(): number {
    return this.#iv.mode === 'token-appended' ? this.#iv.bytes : IV_BYTES;
  }

  get #iv(): GcmIvSetting {
    return this.o.gcmIv ?? HOST_IV;
  }

  async encrypt(label: string, plaintext: Uint8Array, aad: Uint8Array): Promise<GcmSealed> {
    const mode = this.#iv.mode;
    const appended = mode === 'token-appended' ? this.#iv.bytes : 0;
    const { lanes, token } = this.o;
    if (lanes) {
      const iv = mode === 'host' ? this.o.random(IV_BYTES) : undefined;
      const op = {
        kind: 'encrypt',
        label,
        iv,
        aad,
        data: copySecret(plaintext),
        appendedIv: appended,
      } as const;
      const r = await lanes.run(op, false);
      if (appended > 0) return splitOrFail(r.out, plaintext.length, appended);
      const cut = r.out.length - TAG_BYTES;
      const usedIv = r.iv ?? iv;
      if (usedIv === undefined || cut < 0)
        throw new KeygateError('HSM_ERROR', { detail: { reason: 'short output' } });
      return { iv: Buffer.from(usedIv), ciphertext: r.out.subarray(0, cut), tag: r.out.subarray(cut) };
    }
    return this.o.pool.use(
      async (s) => {
        const key = this.o.findKey(s, label);
        const iv =
          mode === 'token-appended'
            ? Buffer.alloc(appended)
            : mode === 'token-random'
              ? token.lib.C_GenerateRandom(s, Buffer.alloc(IV_BYTES))
              : this.o.random(IV_BYTES);
        token.lib.C_EncryptInit(s, gcm(iv, aad), key);
        const input = copySecret(plaintext);
        try {
          const out = await token.lib.C_EncryptAsync(
            s,
            input,
            Buffer.alloc(plaintext.length + TAG_BYTES + appended),
          );
          if (appended > 0) return splitOrFail(out, plaintext.length, appended);
          const cut = out.length - TAG_BYTES;
          return { iv, ciphertext: Buffer.from(out.subarray(0, cut)), tag: Buffer.from(out.subarray(cut)) };
        } finally {
          input.fill(0);
        }
      },
      () => this.o.forgetKey(label),
    );
  }

  async decrypt(label: string, sealed: GcmSealed, aad: Uint8Array): Promise<Buffer> {
    try {
      return await this.#decryptOnce(label, sealed, aad);
    } catch (err) {
      return this.#afterGeneralError(label, sealed, aad, err);
    }
  }

  async #decryptOnce(label: string, sealed: GcmSealed, aad: Uint8Array): Promise<Buffer> {
    if (this.o.lanes) {
      const data = Buffer.concat([sealed.ciphertext, sealed.tag]);
      return (await this.o.lanes.run({ kind: 'decrypt', label, iv: sealed.iv, aad, data }, true)).out;
    }
    const lib = this.o.token.lib;
    return this.o.pool.use(
      async (s) => {
        const key = this.o.findKey(s, label);
        lib.C_DecryptInit(s, gcm(sealed.iv, aad), key);
        const input = Buffer.concat([sealed.ciphertext, sealed.tag]);
        return lib.C_DecryptAsync(s, input, allocSecret(input.length));
      },
      () => this.o.forgetKey(label),
      true,
    );
  }

  /**
   * A decrypt that failed with CKR_GENERAL_ERROR twice (the second time on a fresh session) is
   * either a wrong tag (SoftHSM2's answer) or an HSM failing over (a network HSM's), and a glitch
   * must never tell kube-apiserver its data is bad. Tell them apart with a round trip of zeros on
   * the same key: if it fails, the HSM is failing (503 HSM_UNAVAILABLE); if it works, the blob is
   * tried once more, and a second failure is the blob's (422). Other errors are thrown as they are.
   * The round trip is one AES-GCM encryption outside the usage count, on failures only.
   */
  async #afterGeneralError(label: string, sealed: GcmSealed, aad: Uint8Array, err: unknown): Promise<Buffer> {
    if (
      !isKeygateError(err) ||
      err.code !== 'UNPROCESSABLE_CIPHERTEXT_ERR' ||
      err.detail?.ckr !== 'CKR_GENERAL_ERROR'
    )
      throw err;
    try {
      const zeros = Buffer.alloc(16);
      const probe = await this.encrypt(label, zeros, SELF_CHECK_AAD);
      const back = await this.#decryptOnce(label, probe, SELF_CHECK_AAD);
      if (!back.equals(zeros)) throw new Error('the round trip returned other bytes');
    } catch (cause) {
      this.o.logger.warn(
        { ckr: 'CKR_GENERAL_ERROR', label, reason: isKeygateError(cause) ? cause.code : String(cause) },
        'pkcs11 decrypt failed and the key does not round-trip either: the HSM is failing',
      );
      throw new KeygateError('HSM_UNAVAILABLE', {
        cause,
        detail: { reason: 'CKR_GENERAL_ERROR on decrypt, and a round trip on the same key failed too' },
      });
    }
    return this.#decryptOnce(label, sealed, aad);
  }
}

/** ciphertext || tag || IV from a token that appends its IV; HSM_ERROR when it did not. */
function splitOrFail(out: Uint8Array, plaintextBytes: number, ivBytes: number): GcmSealed {
  try {
    return splitAppended(Buffer.from(out.buffer, out.byteOffset, out.byteLength), plaintextBytes, ivBytes);
  } catch (err) {
    if (!(err instanceof GcmOutputError)) throw err;
    throw new KeygateError('HSM_ERROR', { detail: { reason: err.message } });
  }
}
