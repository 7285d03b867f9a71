import type { Secret } from '@keygate/shared/config';
import type { Random } from '@keygate/shared/crypto';
import { KeygateError } from '@keygate/shared/errors';
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
import { GcmCalls } from './gcm-calls.js';
import { type GcmIvSetting, TAG_BYTES } from './gcm-mechanism.js';
import {
  findKeyObject,
  findSecretKeys,
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
  readonly #gcm: GcmCalls;
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
    this.#gcm = new GcmCalls({
      token: this.token,
      pool: this.pool,
      lanes: this.lanes,
      gcmIv: options.gcmIv,
      random: options.random,
      logger: options.logger,
      findKey: (s, label) => this.findKey(s, label),
      forgetKey: (label) => this.#handles.delete(label),
    });
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
        const sameId = [{ type: pkcs11js.CKA_ID, value: objectId(label) }];
        if (findSecretKeys(this.token.lib, s, sameId, 1).length > 0) {
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
    const sealed = await this.#gcm.encrypt(label, plaintext, aad);
    this.recovery.served(label, episode);
    return sealed;
  }

  /** The IV length of what encrypt() returns (the wrapped DEK's header announces it). */
  get ivBytes(): number {
    return this.#gcm.ivBytes;
  }

  async decrypt(ref: KeyObjectRef, sealed: GcmSealed, aad: Uint8Array): Promise<Buffer> {
    if (!WRAP_LIMITS.ivLengths.includes(sealed.iv.length) || sealed.tag.length !== TAG_BYTES) {
      throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { detail: { reason: 'gcm sizes' } });
    }
    const label = objectLabel(ref);
    const episode = this.recovery.episode;
    const plain = await this.#gcm.decrypt(label, sealed, aad);
    this.recovery.served(label, episode);
    return plain;
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

  /** Every secret key labelled `label` (destroy and recovery look at all of them, checks or not). */
  private findAll(session: Handle, label: string): Handle[] {
    return findSecretKeys(this.token.lib, session, [{ type: pkcs11js.CKA_LABEL, value: label }], 16);
  }
}
