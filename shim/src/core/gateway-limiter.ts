import { KeygateError } from '@keygate/shared/errors';
import type { CallOptions, Clock, GatewayClient, UnwrapResult, WrapResult } from './ports.js';

export interface GatewayLimiterOptions {
  /** MAX_GATEWAY_CALLS: gateway calls in flight at once. */
  readonly maxInFlight: number;
  /** DEADLINE_MS: the whole time a call may take, waiting for a slot included. */
  readonly deadlineMs: number;
  readonly clock: Clock;
  /** Share of the remaining time an estimate may use before the call is refused (default 0.8). */
  readonly headroom?: number;
  /** Called when a call is refused at once (`overloaded`) or its deadline passed while queued (`expired`). */
  readonly onReject?: (reason: 'overloaded' | 'expired') => void;
}

interface Waiter {
  readonly deadline: number;
  readonly start: () => void;
  readonly expire: () => void;
  timer: ReturnType<typeof setTimeout> | undefined;
  done: boolean;
}

/** Weight of the newest call duration in the moving average. */
const EWMA_WEIGHT = 0.2;

/**
 * The GatewayClient port with a bound on concurrent gateway calls, so that a burst degrades
 * instead of collapsing (every call waiting, every answer arriving after its caller gave up).
 * At most `maxInFlight` calls run; the next ones wait in FIFO order, but only those that can
 * plausibly finish in time: a call is refused at once with OVERLOADED (gRPC UNAVAILABLE) when
 * (queue position / maxInFlight + 1) × the moving average of call durations exceeds its budget.
 * A queued call whose deadline passes before it starts fails with GATEWAY_TIMEOUT, never sent.
 * A call that starts passes what is left of its deadline on (CallOptions.budgetMs).
 */
export class GatewayLimiter implements GatewayClient {
  readonly #inner: GatewayClient;
  readonly #o: GatewayLimiterOptions;
  readonly #queue: Waiter[] = [];
  #head = 0;
  #queued = 0;
  #inFlight = 0;
  /** Moving average of call durations; starts at a tenth of the deadline until calls are measured. */
  #ewmaMs: number;
  rejected = 0;
  expired = 0;

  constructor(inner: GatewayClient, options: GatewayLimiterOptions) {
    this.#inner = inner;
    this.#o = options;
    this.#ewmaMs = options.deadlineMs / 10;
  }

  /** Calls running and waiting now, and the current estimate of one call's duration. */
  stats(): { inFlight: number; queued: number; rejected: number; expired: number; ewmaMs: number } {
    return {
      inFlight: this.#inFlight,
      queued: this.#queued,
      rejected: this.rejected,
      expired: this.expired,
      ewmaMs: this.#ewmaMs,
    };
  }

  wrap(dek: Uint8Array, aad: readonly string[], options?: CallOptions): Promise<WrapResult> {
    return this.#run(options, (budgetMs) => this.#inner.wrap(dek, aad, { budgetMs }));
  }

  unwrap(wrappedDek: Uint8Array, aad: readonly string[], options?: CallOptions): Promise<UnwrapResult> {
    return this.#run(options, (budgetMs) => this.#inner.unwrap(wrappedDek, aad, { budgetMs }));
  }

  async #run<T>(options: CallOptions | undefined, call: (budgetMs: number) => Promise<T>): Promise<T> {
    const now = this.#o.clock.now();
    const deadline = now + Math.min(this.#o.deadlineMs, options?.budgetMs ?? Number.POSITIVE_INFINITY);
    // A waiter is handed its slot (counted in #inFlight) by #startNext before it resumes here.
    if (this.#inFlight >= this.#o.maxInFlight) await this.#wait(now, deadline);
    else this.#inFlight++;
    const started = this.#o.clock.now();
    try {
      return await call(deadline - started);
    } finally {
      this.#inFlight--;
      const took = this.#o.clock.now() - started;
      this.#ewmaMs += EWMA_WEIGHT * (took - this.#ewmaMs);
      this.#startNext();
    }
  }

  /** Resolves when a slot is free for this call; rejects when it cannot or did not start in time. */
  #wait(now: number, deadline: number): Promise<void> {
    const expected = (this.#queued / this.#o.maxInFlight + 1) * this.#ewmaMs;
    if (expected >= (deadline - now) * (this.#o.headroom ?? 0.8)) {
      this.rejected++;
      this.#o.onReject?.('overloaded');
      return Promise.reject(
        new KeygateError('OVERLOADED', {
          detail: { queued: this.#queued, inFlight: this.#inFlight, expectedMs: Math.round(expected) },
        }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = {
        deadline,
        done: false,
        timer: undefined,
        start: () => resolve(),
        expire: () => {
          this.expired++;
          this.#o.onReject?.('expired');
          reject(new KeygateError('GATEWAY_TIMEOUT', { detail: { reason: 'deadline passed while queued' } }));
        },
      };
      w.timer = setTimeout(() => this.#expire(w), Math.max(0, deadline - now));
      this.#queue.push(w);
      this.#queued++;
    });
  }

  #expire(w: Waiter): void {
    if (w.done) return;
    w.done = true;
    this.#queued--;
    w.expire();
  }

  /** Hands the freed slot to the oldest waiter that is still waiting. */
  #startNext(): void {
    while (this.#head < this.#queue.length && this.#inFlight < this.#o.maxInFlight) {
      const w = this.#queue[this.#head++] as Waiter;
      if (w.done) continue;
      w.done = true;
      this.#queued--;
      clearTimeout(w.timer);
      if (this.#o.clock.now() >= w.deadline) {
        w.expire();
        continue;
      }
      // Counted as running now, before its continuation runs, so no later caller takes the slot.
      this.#inFlight++;
      w.start();
    }
    if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head);
      this.#head = 0;
    }
  }
}
