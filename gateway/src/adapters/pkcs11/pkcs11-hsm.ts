import type { Secret } from '@keygate/shared/config';
import { allocSecret, copySecret, type Random } from '@keygate/shared/crypto';
import { isKeygateError, KeygateError } from '@keygate/shared/errors';
import { WRAP_LIMITS } from '@keygate/shared/formats';
import type { Logger } from '@keygate/shared/log';
import pkcs11js from 'pkcs11js';
import {
  type GcmSealed,
  type Hsm,
  type HsmStatus,
  type KeyObjectRef,
  objectLabel,
} from '../../core/keys/hsm.js';
import {
  type GcmIvSetting,
  GcmOutputError,
  gcm,
  HOST_IV,
  IV_BYTES,
  splitAppended,
  TAG_BYTES,
} from './gcm-mechanism.js';
import {
  findKeyObject,
  KeyObjectMissing,
  KeyObjectRefused,
  keyTemplate,
  objectId,
  refused,
} from './key-object.js';
import { KeyObjectRecovery } from './object-recovery.js';
import { Pkcs11Token } from './pkcs11-token.js';
import { SessionPool } from './session-pool.js';
import { Pkcs11WorkerLanes } from './worker-lanes.js';

type Handle = Buffer;

export interface Pkcs11HsmOptions {
  readonly modulePath: string;
  /** C_Initialize library parameters (`hsm.libraryParameters`; NSS softoken needs them). */
  readonly libraryParameters?: string;
  readonly tokenLabel: string;
  readonly pin: Secret;
  readonly sessions: number;
  /**
   * 0: encrypt and decrypt use pkcs11js `*Async` calls on the libuv pool, their init on the main
   * thread. N > 0: every request-path call runs on N worker threads, each batch on a pooled session.
   */
  readonly workerThreads?: number;
  /** Where GCM IVs come from (gcm-mechanism.ts GcmIvMode); default host, 12 bytes. */
  readonly gcmIv?: GcmIvSetting | undefined;
  /**
   * Key generation also sets CKA_ALLOWED_MECHANISMS (CKM_AES_GCM), CKA_MODIFIABLE and
   * CKA_COPYABLE false (profiles.ts; off for modules that do not accept them).
   */
  readonly restrictMechanisms?: boolean | undefined;
  /** A call still running after this long is given up (503) and its session abandoned; default 10 s. */
  readonly operationTimeoutMs?: number | undefined;
  /** Calls given up as hung that have not returned, after which no more are sent; default `sessions`. */
  readonly maxHungCalls?: number | undefined;
  /** Refuse root-key objects not marked CKA_LOCAL (default true; the nss profile turns it off). */
  readonly requireLocal?: boolean | undefined;
  readonly random: Random;
  readonly logger: Logger;
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** Key object recovery: first and largest delay between rounds (defaults 200 ms, 5 s). */
  readonly recoveryBackoffInitialMs?: number;
  readonly recoveryBackoffMaxMs?: number;
}

/** Failed session opens in a row after which the module is re-initialised, not just reopened. */
const OPEN_FAILURES_BEFORE_RECOVERY = 3;

/** The AAD of the round trip that tells a wrong tag from a failing HSM (see #afterGeneralError). */
const SELF_CHECK_AAD = Buffer.from('keygate:self-check');

/**
 * The Hsm port over PKCS#11 (pkcs11js). Each CRK version is an AES-256 token object, sensitive and
 * not extractable, labelled `keygate:<instance>:<crkId>:<versionId>` with CKA_ID = version id.
 * Request-path crypto runs either on worker threads (`workerThreads` > 0: find, init and the call
 * all off the event loop, in batches) or as C_EncryptAsync/C_DecryptAsync on the libuv pool
 * (UV_THREADPOOL_SIZE must be at least `sessions`) after a synchronous init.
 * An object it cannot find is HSM_KEY_OBJECT_MISSING; the core reports it back (reportMissing)
 * when the store says the key is live, and KeyObjectRecovery brings the token back.
 */
export class Pkcs11Hsm implements Hsm {
  readonly token: Pkcs11Token;
  readonly pool: SessionPool;
  readonly #handles = new Map<string, Handle>();
  /** Present with `workerThreads` > 0. */
  readonly lanes: Pkcs11WorkerLanes | undefined;
  readonly recovery: KeyObjectRecovery;
  #startFailure: string | undefined;

  constructor(private readonly options: Pkcs11HsmOptions) {
    this.token = new Pkcs11Token(
      options.modulePath,
      options.tokenLabel,
      options.pin,
      options.logger,
      options.libraryParameters,
    );
    this.pool = new SessionPool(
      this.token,
      {
        size: options.sessions,
        backoffInitialMs: options.backoffInitialMs,
        backoffMaxMs: options.backoffMaxMs,
        operationTimeoutMs: options.operationTimeoutMs,
        maxHungCalls: options.maxHungCalls,
      },
      options.logger,
    );
    this.pool.onSessionsLost = () => {
      this.#handles.clear();
      this.lanes?.forgetHandles();
    };
    this.recovery = new KeyObjectRecovery({
      token: this.token,
      pool: this.pool,
      logger: options.logger,
      exists: (s, label) => this.findAll(s, label).length > 0,
      backoffInitialMs: options.recoveryBackoffInitialMs,
      backoffMaxMs: options.recoveryBackoffMaxMs,
    });
    this.pool.onOpenFailed = (failures) => {
      if (failures >= OPEN_FAILURES_BEFORE_RECOVERY) this.recovery.sessionsFailing();
    };
    const threads = options.workerThreads ?? 0;
    if (threads > options.sessions) throw new RangeError('workerThreads must not exceed sessions');
    if (threads > 0) {
      this.lanes = new Pkcs11WorkerLanes({
        modulePath: options.modulePath,
        libraryParameters: options.libraryParameters,
        requireLocal: options.requireLocal ?? true,
        threads,
        pool: this.pool,
        logger: options.logger,
        operationTimeoutMs: options.operationTimeoutMs,
      });
    }
    try {
      this.pool.warmUp();
    } catch (err) {
      // Serve anyway: /readyz tells why, and the pool reopens by itself unless the PIN was refused.
      this.#startFailure = err instanceof KeygateError ? err.code : 'HSM_ERROR';
    }
  }

  async generateKey(ref: KeyObjectRef): Promise<void> {
    const label = objectLabel(ref);
    const template = keyTemplate(label, this.options.restrictMechanisms ?? false);
    const handle = await this.pool.use(
      (s) => {
        // NSS softoken stores a secret key with the CKA_ID of an existing one over it (same
        // handle, new value: the old root key is gone). Version ids are random; refuse anyway.
        if (this.findById(s, objectId(label)).length > 0) {
          throw new KeygateError('HSM_ERROR', { detail: { reason: 'CKA_ID already in use', label } });
        }
        return new Promise<Handle>((resolve, reject) =>
          this.token.lib.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, template, (err, key) =>
            err ? reject(err) : resolve(key),
          ),
        );
      },
      () => undefined,
    );
    this.#handles.set(label, handle);
  }

  async encrypt(ref: KeyObjectRef, plaintext: Uint8Array, aad: Uint8Array): Promise<GcmSealed> {
    const label = objectLabel(ref);
    const episode = this.recovery.episode;
    const sealed = await this.encryptOn(label, plaintext, aad);
    this.recovery.served(label, episode);
    return sealed;
  }

  /** The IV length of what encrypt() returns (the wrapped DEK's header announces it). */
  get ivBytes(): number {
    return this.#iv.mode === 'token-appended' ? this.#iv.bytes : IV_BYTES;
  }

  get #iv(): GcmIvSetting {
    return this.options.gcmIv ?? HOST_IV;
  }

  private async encryptOn(label: string, plaintext: Uint8Array, aad: Uint8Array): Promise<GcmSealed> {
    const mode = this.#iv.mode;
    const appended = mode === 'token-appended' ? this.#iv.bytes : 0;
    if (this.lanes) {
      const iv = mode === 'host' ? this.options.random(IV_BYTES) : undefined;
      const op = {
        kind: 'encrypt',
        label,
        iv,
        aad,
        data: copySecret(plaintext),
        appendedIv: appended,
      } as const;
      const r = await this.lanes.run(op, false);
      if (appended > 0) return splitOrFail(r.out, plaintext.length, appended);
      const cut = r.out.length - TAG_BYTES;
      const usedIv = r.iv ?? iv;
      if (usedIv === undefined || cut < 0)
        throw new KeygateError('HSM_ERROR', { detail: { reason: 'short output' } });
      return { iv: Buffer.from(usedIv), ciphertext: r.out.subarray(0, cut), tag: r.out.subarray(cut) };
    }
    return this.pool.use(
      async (s) => {
        const key = this.findKey(s, label);
        const iv =
          mode === 'token-appended'
            ? Buffer.alloc(appended)
            : mode === 'token-random'
              ? this.token.lib.C_GenerateRandom(s, Buffer.alloc(IV_BYTES))
              : this.options.random(IV_BYTES);
        this.token.lib.C_EncryptInit(s, gcm(iv, aad), key);
        const input = copySecret(plaintext);
        try {
          const out = await this.token.lib.C_EncryptAsync(
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
      () => this.#handles.delete(label),
    );
  }

  async decrypt(ref: KeyObjectRef, sealed: GcmSealed, aad: Uint8Array): Promise<Buffer> {
    if (!WRAP_LIMITS.ivLengths.includes(sealed.iv.length) || sealed.tag.length !== TAG_BYTES) {
      throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { detail: { reason: 'gcm sizes' } });
    }
    const label = objectLabel(ref);
    const episode = this.recovery.episode;
    let plain: Buffer;
    try {
      plain = await this.decryptOn(label, sealed, aad);
    } catch (err) {
      plain = await this.#afterGeneralError(label, sealed, aad, err);
    }
    this.recovery.served(label, episode);
    return plain;
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
      const probe = await this.encryptOn(label, zeros, SELF_CHECK_AAD);
      const back = await this.decryptOn(label, probe, SELF_CHECK_AAD);
      if (!back.equals(zeros)) throw new Error('the round trip returned other bytes');
    } catch (cause) {
      this.options.logger.warn(
        { ckr: 'CKR_GENERAL_ERROR', label, reason: isKeygateError(cause) ? cause.code : String(cause) },
        'pkcs11 decrypt failed and the key does not round-trip either: the HSM is failing',
      );
      throw new KeygateError('HSM_UNAVAILABLE', {
        cause,
        detail: { reason: 'CKR_GENERAL_ERROR on decrypt, and a round trip on the same key failed too' },
      });
    }
    return this.decryptOn(label, sealed, aad);
  }

  private async decryptOn(label: string, sealed: GcmSealed, aad: Uint8Array): Promise<Buffer> {
    if (this.lanes) {
      const data = Buffer.concat([sealed.ciphertext, sealed.tag]);
      return (await this.lanes.run({ kind: 'decrypt', label, iv: sealed.iv, aad, data }, true)).out;
    }
    return this.pool.use(
      async (s) => {
        const key = this.findKey(s, label);
        this.token.lib.C_DecryptInit(s, gcm(sealed.iv, aad), key);
        const input = Buffer.concat([sealed.ciphertext, sealed.tag]);
        return this.token.lib.C_DecryptAsync(s, input, allocSecret(input.length));
      },
      () => this.#handles.delete(label),
      true,
    );
  }

  reportMissing(ref: KeyObjectRef): void {
    this.recovery.missing(objectLabel(ref));
  }

  async destroyKey(ref: KeyObjectRef): Promise<void> {
    const label = objectLabel(ref);
    this.recovery.forget(label);
    this.#handles.delete(label);
    this.lanes?.forgetHandles();
    await this.pool.use(
      async (s) => {
        const found = this.findAll(s, label);
        // Nothing found: gone already, or hidden by an HSM failing over (then it is still there).
        if (found.length === 0)
          this.options.logger.warn(
            { label },
            'pkcs11 destroy found no object for this key version; if the HSM was failing over, it may still hold it: run hsm check',
          );
        for (const h of found) this.token.lib.C_DestroyObject(s, h);
      },
      () => undefined,
    );
  }

  status(): HsmStatus {
    const sessions = this.pool.stats;
    const { recovery, problem } = this.recovery.status();
    const notReady = (reason: string): HsmStatus => ({
      backend: 'pkcs11',
      ready: false,
      reasons: problem && problem.reason !== reason ? [reason, problem.reason] : [reason],
      sessions,
      recovery,
    });
    const unusable = this.token.unusable;
    if (unusable) return notReady(unusable.reason);
    const failure = this.pool.failure ?? this.pool.hungFailure;
    if (failure) return notReady(failure);
    if (sessions.open === 0 && this.#startFailure) {
      return notReady(`start-up check failed (${this.#startFailure})`);
    }
    if (problem?.blocking) return notReady(problem.reason);
    return { backend: 'pkcs11', ready: true, reasons: problem ? [problem.reason] : [], sessions, recovery };
  }

  async close(): Promise<void> {
    this.recovery.close();
    await this.lanes?.close();
    this.pool.close();
    this.token.close();
  }

  /**
   * The cached handle of a key object, found by label on a miss; HSM_KEY_OBJECT_MISSING when
   * absent (destroyed, or the token cannot see it right now: only the store can tell).
   */
  private findKey(session: Handle, label: string): Handle {
    const cached = this.#handles.get(label);
    if (cached !== undefined) return cached;
    let found: Handle;
    try {
      found = findKeyObject(this.token.lib, session, label, this.options.requireLocal ?? true);
    } catch (err) {
      if (err instanceof KeyObjectMissing)
        throw new KeygateError('HSM_KEY_OBJECT_MISSING', { detail: { label } });
      if (err instanceof KeyObjectRefused) throw refused(this.options.logger, label, err.message);
      throw err;
    }
    this.#handles.set(label, found);
    return found;
  }

  private findById(session: Handle, id: Buffer): Handle[] {
    const lib = this.token.lib;
    lib.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_ID, value: id },
    ]);
    try {
      return lib.C_FindObjects(session, 16);
    } finally {
      lib.C_FindObjectsFinal(session);
    }
  }

  private findAll(session: Handle, label: string): Handle[] {
    const lib = this.token.lib;
    lib.C_FindObjectsInit(session, [
      { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
      { type: pkcs11js.CKA_LABEL, value: label },
    ]);
    try {
      return lib.C_FindObjects(session, 16);
    } finally {
      lib.C_FindObjectsFinal(session);
    }
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
