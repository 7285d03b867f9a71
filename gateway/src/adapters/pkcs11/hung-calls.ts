import { KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';

/** Default of SessionPoolOptions.operationTimeoutMs (hsm.operationTimeout). */
export const DEFAULT_OPERATION_TIMEOUT_MS = 10_000;

/** Default of SessionPoolOptions.hungProbeIntervalMs. */
export const DEFAULT_HUNG_PROBE_INTERVAL_MS = 5_000;

export interface HungCallsOptions {
  /** Calls hanging after which no more are sent (SessionPoolOptions.maxHungCalls). */
  readonly max: number;
  /** While none are sent, one is let through this often to see whether the HSM answers. */
  readonly probeIntervalMs: number;
  readonly now: () => number;
  readonly logger: Logger;
}

/**
 * Calls that do not return in time. giveUpAfter() gives one up after the operation timeout;
 * HungCalls counts those that have not returned. Each holds a thread (libuv pool or worker) for as
 * long as the module keeps it, so a lasting hang must not take one more per timeout: once `max`
 * hang, admit() refuses calls (HSM_UNAVAILABLE at once) but for a probe every `probeIntervalMs`.
 * When a call answers, the hung ones are left behind ("forgotten": still counted as threads,
 * never more than twice `max` in all) and calls flow again.
 */
export class HungCalls {
  /** Calls given up that have not returned (their threads are still in the module). */
  readonly #hung = new Set<number>();
  /** Hung calls left behind once the HSM answered again; they still hold their threads. */
  readonly #forgotten = new Set<number>();
  #seq = 0;
  #probeAt = 0;

  constructor(private readonly o: HungCallsOptions) {}

  /** Calls given up that have not returned yet (hung and forgotten). */
  get count(): number {
    return this.#hung.size + this.#forgotten.size;
  }

  /**
   * Counts a call given up; returns what to call when it comes back after all (once; `onReturn`
   * runs then, e.g. to close its session).
   */
  add(onReturn: () => void): () => void {
    const id = ++this.#seq;
    this.#hung.add(id);
    // Blocked from now: the first probe goes out one interval later, not at once.
    if (this.#hung.size === this.o.max) this.#probeAt = this.o.now() + this.o.probeIntervalMs;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#hung.delete(id);
      this.#forgotten.delete(id);
      onReturn();
      this.o.logger.info(
        { hung: this.count },
        'pkcs11 call given up as hung returned; its session is closed',
      );
    };
  }

  /** Why no calls are sent now (too many hang), or undefined. */
  get failure(): string | undefined {
    const { max } = this.o;
    if (this.count >= 2 * max)
      return `${this.count} calls to the HSM have not returned (the most hsm.maxHungCalls allows); no more are sent until one does`;
    if (this.#hung.size >= max)
      return `${this.#hung.size} calls to the HSM have not returned; no more are sent until one does (one every ${Math.round(this.o.probeIntervalMs / 1000)} s to see whether it answers)`;
    return undefined;
  }

  /** Refuses a call while too many hang (HSM_UNAVAILABLE), but for a probe now and then. */
  admit(): void {
    const reason = this.failure;
    if (reason === undefined) return;
    const now = this.o.now();
    if (this.count < 2 * this.o.max && now >= this.#probeAt) {
      this.#probeAt = now + this.o.probeIntervalMs;
      return;
    }
    throw new KeygateError('HSM_UNAVAILABLE', { detail: { reason } });
  }

  /** A call returned: the HSM answers. Calls held back because others hang flow again. */
  answered(): void {
    if (this.#hung.size < this.o.max) return;
    this.o.logger.warn(
      { hung: this.#hung.size, leftBehind: this.count },
      'pkcs11: the HSM answers again; calls that hung are left behind',
    );
    for (const id of this.#hung) this.#forgotten.add(id);
    this.#hung.clear();
  }
}

/** Carries a timeout's error past SessionPool.use()'s retry logic: a hung call is not tried again. */
export class OperationTimedOut extends Error {
  constructor(readonly error: KeygateError) {
    super(error.message);
  }
}

/**
 * `running`, or after `ms` (0: never) an OperationTimedOut carrying 503 HSM_UNAVAILABLE. On the
 * timeout `giveUp` is called (it abandons the call and returns what to call if it ever returns).
 */
export function giveUpAfter<T>(running: Promise<T>, ms: number, giveUp: () => () => void): Promise<T> {
  if (ms <= 0) return running;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // If the call ever returns, its session is closed and its thread counts no more.
      const returned = giveUp();
      running.then(returned, returned);
      const error = new KeygateError('HSM_UNAVAILABLE', {
        detail: { reason: `no answer from the HSM within ${ms} ms` },
      });
      reject(new OperationTimedOut(error));
    }, ms);
    timer.unref();
  });
  return Promise.race([running, late]).finally(() => clearTimeout(timer));
}
