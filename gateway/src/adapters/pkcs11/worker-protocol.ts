import type { Worker } from 'node:worker_threads';

/**
 * Messages between the gateway's main thread and its PKCS#11 worker threads
 * (`hsm.workerThreads`). Buffers travel as exact-size Uint8Arrays. Plaintext (a DEK to encrypt,
 * a decrypted DEK) is transferred, not cloned, so no copy stays behind on the sending side.
 */

/** One request-path operation on a CRK version found by label. */
export interface WorkerOp {
  readonly id: number;
  readonly kind: 'encrypt' | 'decrypt';
  readonly label: string;
  /**
   * The GCM IV. Absent on encrypt when the token provides it: from C_GenerateRandom
   * (`token-random`), or generated and appended by the module (`appendedIv` > 0).
   */
  readonly iv: Uint8Array | undefined;
  /** Encrypt with `gcmIv: token-appended`: the IV length the module appends (0 otherwise). */
  readonly appendedIv?: number | undefined;
  readonly aad: Uint8Array;
  /** Plaintext to encrypt (zeroed by the worker after use), or ciphertext || tag to decrypt. */
  readonly data: Uint8Array;
}

/** Operations to run one after another on `session`, a logged-in session the main thread owns. */
export interface WorkerBatch {
  readonly session: Uint8Array;
  /** Bumped by the main thread whenever cached object handles may be stale. */
  readonly generation: number;
  readonly ops: readonly WorkerOp[];
}

export type WorkerResult =
  | {
      readonly id: number;
      readonly ok: true;
      /** Decrypt: the plaintext. Encrypt: ciphertext || tag (|| IV when the module appends it). */
      readonly out: Uint8Array;
      /** Encrypt: the IV used (the token's, or the one sent). */
      readonly iv?: Uint8Array;
    }
  | {
      readonly id: number;
      readonly ok: false;
      /** CKR_* name of the failed call, when it was a PKCS#11 error. */
      readonly ckr: string | undefined;
      readonly method: string;
      /** No object has the label (destroyed, or the token cannot see it: the store decides). */
      readonly missing: boolean;
      /** An object has the label but fails the key-object checks (key-object.ts): why. */
      readonly refused?: string | undefined;
    };

export interface WorkerReply {
  readonly results: readonly WorkerResult[];
}

/**
 * Sent by the main thread to end a worker: it finishes what came before, closes its port and
 * exits on its own (terminating it instead can crash the process: see stopWorker).
 */
export interface WorkerStop {
  readonly stop: true;
}

/** Sent once by a worker that could not load the module. */
export interface WorkerFatal {
  readonly fatal: string;
}

export interface WorkerSetup {
  readonly modulePath: string;
  /** C_Initialize library parameters, as the main thread passed them. */
  readonly libraryParameters?: string | undefined;
  /** Refuse root-key objects not marked CKA_LOCAL (Pkcs11HsmOptions.requireLocal). */
  readonly requireLocal: boolean;
}

/** Asks a worker to exit once it has done what it was sent before (it answers nothing more). */
export function askToStop(worker: Worker): void {
  const stop: WorkerStop = { stop: true };
  worker.postMessage(stop);
}

/** How long a worker asked to stop may take (a device call in progress) before close() goes on. */
const STOP_GRACE_MS = 5000;

/**
 * Asks a worker to exit after what it was sent before, and waits for that. Never `terminate()`:
 * pkcs11js does not check N-API results, so a worker terminated between two of its calls
 * dereferences garbage and takes the whole process down (SIGSEGV, seen in this adapter's tests).
 * A worker stuck in a device call is left behind (it is unref'd) and reported as false.
 */
export async function stopWorker(worker: Worker): Promise<boolean> {
  const exited = new Promise<boolean>((resolve) => worker.once('exit', () => resolve(true)));
  askToStop(worker);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), STOP_GRACE_MS);
  });
  const done = await Promise.race([exited, late]);
  clearTimeout(timer);
  return done;
}
