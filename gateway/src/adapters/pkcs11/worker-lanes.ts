import { Worker } from 'node:worker_threads';
import { copySecret } from '@keygate/shared/crypto';
import { KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import { ckrToKeygate, retryReason } from './ckr-map.js';
import { DEFAULT_OPERATION_TIMEOUT_MS } from './hung-calls.js';
import { refused } from './key-object.js';
import type { SessionPool } from './session-pool.js';
import {
  askToStop,
  stopWorker,
  type WorkerBatch,
  type WorkerFatal,
  type WorkerOp,
  type WorkerReply,
} from './worker-protocol.js';

type Handle = Buffer;

/** What an operation gives back: decrypt's plaintext, or encrypt's ciphertext || tag and IV. */
export interface LaneOutput {
  readonly out: Buffer;
  readonly iv: Buffer | undefined;
}

interface Pending {
  readonly op: WorkerOp;
  readonly decrypting: boolean;
  attempt: number;
  readonly resolve: (r: LaneOutput) => void;
  readonly reject: (e: unknown) => void;
}

interface Lane {
  readonly index: number;
  worker: Worker | undefined;
  /** The session of the batch in flight. */
  session: Handle | undefined;
  inFlight: Pending[];
  /** The operation timeout of the batch in flight. */
  timer?: NodeJS.Timeout | undefined;
}

export interface WorkerLanesOptions {
  readonly modulePath: string;
  readonly libraryParameters?: string | undefined;
  readonly requireLocal: boolean;
  readonly threads: number;
  readonly pool: SessionPool;
  readonly logger: Logger;
  /** Delay before a crashed worker thread is replaced. */
  readonly respawnMs?: number;
  /** A batch not back after this long is given up (SessionPoolOptions.operationTimeoutMs). */
  readonly operationTimeoutMs?: number;
}

/** The compiled worker next to this file (dist/adapters/pkcs11/pkcs11-worker.js). */
const WORKER_URL = new URL('./pkcs11-worker.js', import.meta.url);

/**
 * Runs request-path PKCS#11 operations on `threads` worker threads, each batch on a session
 * checked out of the pool. Operations queue on the main thread; an idle lane takes its share of
 * the queue as one batch (one message each way), so under load the per-operation cost on the
 * event loop is a few microseconds. Session and device failures go through the pool as before
 * (drop, reopen, log in again) and the operation is tried up to twice more on a fresh session.
 */
export class Pkcs11WorkerLanes {
  readonly #lanes: Lane[] = [];
  /** Workers given up as hung, with what to call when their call comes back after all. */
  readonly #leftBehind = new Map<Worker, () => void>();
  readonly #queue: Pending[] = [];
  readonly #o: WorkerLanesOptions;
  #nextId = 0;
  #generation = 0;
  #closed = false;
  #pumpQueued = false;

  constructor(options: WorkerLanesOptions) {
    if (!Number.isInteger(options.threads) || options.threads < 1) throw new RangeError('threads >= 1');
    this.#o = options;
    for (let i = 0; i < options.threads; i++) {
      const lane: Lane = { index: i, worker: undefined, session: undefined, inFlight: [] };
      this.#lanes.push(lane);
      this.#spawn(lane);
    }
  }

  /** The live worker threads (a test stops one to see it replaced). */
  get workers(): readonly Worker[] {
    return this.#lanes.flatMap((l) => (l.worker ? [l.worker] : []));
  }

  get stats(): { threads: number; queued: number } {
    return { threads: this.#lanes.length, queued: this.#queue.length };
  }

  /** Cached object handles in the workers may be stale (sessions lost, a key destroyed). */
  forgetHandles(): void {
    this.#generation++;
  }

  run(op: Omit<WorkerOp, 'id'>, decrypting: boolean): Promise<LaneOutput> {
    if (this.#closed) return Promise.reject(closing());
    return new Promise<LaneOutput>((resolve, reject) => {
      // Each attempt transfers an exact-size copy of the plaintext to the worker, which zeroes it
      // after the call; this one (kept for a retry) is zeroed once the operation settles.
      const wipe = op.kind === 'encrypt' ? () => op.data.fill(0) : () => undefined;
      this.#queue.push({
        op: { ...op, id: this.#nextId++ },
        decrypting,
        attempt: 0,
        resolve: (r) => {
          wipe();
          resolve(r);
        },
        reject: (e) => {
          wipe();
          reject(e);
        },
      });
      // Let every request of this tick queue first, so they leave as one batch.
      if (!this.#pumpQueued) {
        this.#pumpQueued = true;
        queueMicrotask(() => {
          this.#pumpQueued = false;
          this.#pump();
        });
      }
    });
  }

  /**
   * Stops the workers: queued operations fail with HSM_UNAVAILABLE (closing), batches in flight
   * finish. Each worker is asked to exit and given STOP_GRACE_MS.
   */
  async close(): Promise<void> {
    this.#closed = true;
    for (const p of this.#queue.splice(0)) p.reject(closing());
    await Promise.all(
      this.#lanes.map(async (lane) => {
        const w = lane.worker;
        const stopped = w === undefined || (await stopWorker(w));
        if (!stopped) {
          this.#o.logger.warn({ lane: lane.index }, 'pkcs11 worker did not stop in time; leaving it');
        }
        lane.worker = undefined;
        const failed = lane.inFlight;
        lane.inFlight = [];
        for (const p of failed) p.reject(closing());
        // A worker left behind may still be in a call on its session: do not hand that back.
        if (lane.session && stopped) this.#o.pool.checkin(lane.session);
        lane.session = undefined;
      }),
    );
  }

  #pump(): void {
    for (const lane of this.#lanes) {
      if (this.#queue.length === 0) return;
      if (lane.worker === undefined || lane.inFlight.length > 0) continue;
      const idle = this.#lanes.filter((l) => l.worker !== undefined && l.inFlight.length === 0).length;
      const batch = this.#queue.splice(0, Math.ceil(this.#queue.length / Math.max(1, idle)));
      lane.inFlight = batch;
      void this.#send(lane, batch);
    }
  }

  async #send(lane: Lane, batch: Pending[]): Promise<void> {
    try {
      // Per batch, not for good: administrative calls (generate, destroy) share the pool.
      lane.session = await this.#o.pool.checkout();
    } catch (err) {
      // No session (backoff, refused PIN, closing): these operations fail with the pool's reason.
      lane.inFlight = [];
      for (const p of batch) p.reject(err);
      this.#pump();
      return;
    }
    const worker = lane.worker;
    if (worker === undefined || this.#closed || lane.inFlight !== batch) {
      // Closed, or the worker died while this waited for a session (its exit handler has
      // already failed the batch): give the session back unused.
      this.#o.pool.checkin(lane.session);
      lane.session = undefined;
      if (lane.inFlight === batch) {
        lane.inFlight = [];
        for (const p of batch) p.reject(closing());
      }
      return;
    }
    // Structured clone copies a typed array's whole ArrayBuffer, and most Buffers are views of
    // Node's 8 KiB pool: send exact-size copies. The plaintext copies are transferred, so none
    // stays here (the worker zeroes them after use); they come from copySecret, because a small
    // `new Uint8Array` lives inside V8's heap, where moving it leaves copies nobody can zero.
    const transfer: ArrayBuffer[] = [];
    const ops = batch.map((p): WorkerOp => {
      const secret = p.op.kind === 'encrypt';
      const data = secret ? copySecret(p.op.data) : new Uint8Array(p.op.data);
      if (secret) transfer.push(data.buffer as ArrayBuffer);
      return {
        id: p.op.id,
        kind: p.op.kind,
        label: p.op.label,
        iv: p.op.iv && new Uint8Array(p.op.iv),
        aad: new Uint8Array(p.op.aad),
        data,
        appendedIv: p.op.appendedIv,
      };
    });
    const msg: WorkerBatch = { session: new Uint8Array(lane.session), generation: this.#generation, ops };
    worker.postMessage(msg, transfer);
    const ms = this.#o.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    if (ms > 0) {
      lane.timer = setTimeout(() => this.#hung(lane, worker, batch, ms), ms);
      lane.timer.unref();
    }
  }

  /**
   * A batch did not come back in time: its worker is stuck in a device call. The operations fail
   * with HSM_UNAVAILABLE, the session is abandoned, and the worker is left behind (a worker is
   * never terminated: see stopWorker) while a new one takes the lane.
   */
  #hung(lane: Lane, worker: Worker, batch: Pending[], ms: number): void {
    if (lane.worker !== worker || lane.inFlight !== batch) return;
    lane.timer = undefined;
    lane.worker = undefined;
    lane.inFlight = [];
    for (const p of batch) {
      p.reject(
        new KeygateError('HSM_UNAVAILABLE', { detail: { reason: `no answer from the HSM within ${ms} ms` } }),
      );
    }
    if (lane.session) {
      const returned = this.#o.pool.abandon(
        lane.session,
        'a worker thread did not return from the HSM in time',
      );
      this.#leftBehind.set(worker, returned);
    }
    lane.session = undefined;
    this.#o.logger.error({ lane: lane.index, timeoutMs: ms }, 'pkcs11 worker hung in a call; replacing it');
    if (!this.#closed) this.#spawn(lane);
    this.#pump();
  }

  #onReply(lane: Lane, reply: WorkerReply): void {
    clearTimeout(lane.timer);
    lane.timer = undefined;
    const batch = lane.inFlight;
    lane.inFlight = [];
    let lostAt: { kind: 'session' | 'device'; ckr: string | undefined } | undefined;
    for (const [i, p] of batch.entries()) {
      // The worker answers every operation of the batch, in order.
      const r = reply.results[i];
      if (r === undefined || r.id !== p.op.id) {
        p.reject(new KeygateError('HSM_ERROR', { detail: { reason: 'no worker result' } }));
      } else if (r.ok) {
        p.resolve({
          out: Buffer.from(r.out.buffer, r.out.byteOffset, r.out.byteLength),
          iv: r.iv ? Buffer.from(r.iv.buffer, r.iv.byteOffset, r.iv.byteLength) : undefined,
        });
      } else if (r.missing) {
        p.reject(new KeygateError('HSM_KEY_OBJECT_MISSING', { detail: { label: p.op.label } }));
      } else if (r.refused !== undefined) {
        p.reject(refused(this.#o.logger, p.op.label, r.refused));
      } else {
        const err = Object.assign(new Error(r.ckr ?? 'not a PKCS#11 error'), { method: r.method });
        // As SessionPool.use, on a fresh session (a worker looks its handles up itself).
        const retry = retryReason(err, p.decrypting, p.attempt);
        if (retry === 'fresh' || retry === 'session' || retry === 'device') {
          lostAt ??= { kind: retry === 'device' ? 'device' : 'session', ckr: r.ckr };
          p.attempt++;
          this.#queue.push(p);
        } else {
          p.reject(ckrToKeygate(err, p.decrypting));
        }
      }
    }
    if (lane.session) {
      if (lostAt) this.#o.pool.lost(lane.session, lostAt.kind, lostAt.ckr, 0);
      else {
        this.#o.pool.checkin(lane.session);
        this.#o.pool.answered();
      }
      lane.session = undefined;
    }
    this.#pump();
  }

  #spawn(lane: Lane): void {
    const worker = new Worker(WORKER_URL, {
      workerData: {
        modulePath: this.#o.modulePath,
        libraryParameters: this.#o.libraryParameters,
        requireLocal: this.#o.requireLocal,
      },
    });
    worker.unref();
    lane.worker = worker;
    worker.on('message', (m: WorkerReply | WorkerFatal) => {
      // A worker given up as hung that answers after all: its batch was already failed. Its call
      // is over: close its session, and let the thread end (it would idle forever otherwise).
      if (lane.worker !== worker) {
        const returned = this.#leftBehind.get(worker);
        if (returned !== undefined) {
          this.#leftBehind.delete(worker);
          returned();
          askToStop(worker);
        }
        return;
      }
      if ('fatal' in m) {
        this.#o.logger.error(
          { lane: lane.index, reason: m.fatal },
          'pkcs11 worker could not load the module',
        );
        return;
      }
      this.#onReply(lane, m);
    });
    worker.on('error', (err) => {
      this.#o.logger.error({ lane: lane.index, err: err.message }, 'pkcs11 worker failed');
    });
    worker.on('exit', (code) => {
      if (lane.worker !== worker) return; // already replaced
      if (this.#closed) return; // stopped by close(), which cleans up after it
      lane.worker = undefined;
      this.#o.logger.error({ lane: lane.index, code }, 'pkcs11 worker exited; replacing it');
      const failed = lane.inFlight;
      lane.inFlight = [];
      for (const p of failed) {
        p.reject(new KeygateError('HSM_UNAVAILABLE', { detail: { reason: 'pkcs11 worker exited' } }));
      }
      // The session may be mid-operation: close it rather than hand it to someone else.
      if (lane.session) this.#o.pool.lost(lane.session, 'session', undefined, 0);
      lane.session = undefined;
      setTimeout(() => {
        if (this.#closed || lane.worker !== undefined) return;
        this.#spawn(lane);
        this.#pump();
      }, this.#o.respawnMs ?? 1000).unref();
      this.#pump();
    });
  }
}

function closing(): KeygateError {
  return new KeygateError('HSM_UNAVAILABLE', { detail: { reason: 'closing' } });
}
