import { KeygateError } from '@keygate/shared/errors';

export interface AdmissionOptions {
  /** Operations that may run at once. */
  readonly maxInFlight: number;
  /** Operations that may wait for a slot; one more is refused at once with OVERLOADED. */
  readonly maxQueued: number;
  /** Milliseconds, on the same clock as the deadlines passed to acquire(). */
  readonly now: () => number;
}

/** Gives the slot back; call exactly once. */
export type Release = () => void;

interface Waiter {
  readonly deadlineAt: number | undefined;
  readonly resolve: (release: Release) => void;
  readonly reject: (err: KeygateError) => void;
}

/** Seconds a refused caller is told to wait (Retry-After). */
export const OVERLOAD_RETRY_AFTER_SECONDS = 1;

/**
 * Bounds the work in progress: at most `maxInFlight` operations run, at most `maxQueued` wait in
 * arrival order, and anything beyond is refused at once with OVERLOADED, so a burst degrades into
 * fast refusals instead of a queue in which every caller times out. A waiter whose deadline has
 * passed when its turn comes is refused with DEADLINE_EXCEEDED without running.
 */
export class Admission {
  readonly #o: AdmissionOptions;
  #inFlight = 0;
  #queue: Waiter[] = [];
  #head = 0;

  constructor(options: AdmissionOptions) {
    if (options.maxInFlight < 1 || options.maxQueued < 0)
      throw new RangeError('maxInFlight >= 1, maxQueued >= 0');
    this.#o = options;
  }

  get stats(): { inFlight: number; queued: number } {
    return { inFlight: this.#inFlight, queued: this.#queue.length - this.#head };
  }

  /**
   * A slot now (synchronously) when one is free, else a promise of one; throws OVERLOADED when
   * the queue is full and DEADLINE_EXCEEDED when `deadlineAt` has passed.
   */
  acquire(deadlineAt: number | undefined): Release | Promise<Release> {
    if (deadlineAt !== undefined && this.#o.now() >= deadlineAt) throw deadlineExceeded('before admission');
    if (this.#inFlight < this.#o.maxInFlight) {
      this.#inFlight++;
      return this.#release();
    }
    if (this.stats.queued >= this.#o.maxQueued) this.#dropExpired();
    if (this.stats.queued >= this.#o.maxQueued) {
      throw new KeygateError('OVERLOADED', {
        detail: { reason: 'queue full', retryAfterSeconds: OVERLOAD_RETRY_AFTER_SECONDS },
      });
    }
    return new Promise<Release>((resolve, reject) => this.#queue.push({ deadlineAt, resolve, reject }));
  }

  #release(): Release {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#inFlight--;
      this.#next();
    };
  }

  /** Hands the free slot to the oldest waiter that still wants it. */
  #next(): void {
    while (this.#head < this.#queue.length && this.#inFlight < this.#o.maxInFlight) {
      const w = this.#queue[this.#head] as Waiter;
      this.#queue[this.#head] = undefined as unknown as Waiter;
      this.#head++;
      if (w.deadlineAt !== undefined && this.#o.now() >= w.deadlineAt) {
        w.reject(deadlineExceeded('while queued'));
        continue;
      }
      this.#inFlight++;
      w.resolve(this.#release());
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /** With a full queue: refuse the waiters whose callers have given up already. */
  #dropExpired(): void {
    const now = this.#o.now();
    const keep: Waiter[] = [];
    for (let i = this.#head; i < this.#queue.length; i++) {
      const w = this.#queue[i] as Waiter;
      if (w.deadlineAt !== undefined && now >= w.deadlineAt) w.reject(deadlineExceeded('while queued'));
      else keep.push(w);
    }
    this.#queue = keep;
    this.#head = 0;
  }
}

function deadlineExceeded(reason: string): KeygateError {
  return new KeygateError('DEADLINE_EXCEEDED', { detail: { reason } });
}
