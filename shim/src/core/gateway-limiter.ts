import type { Clock } from '@keygate/shared';
import { KeygateError } from '@keygate/shared/errors';
import type { CallOptions, GatewayClient, UnwrapResult, WrapResult } from './ports.js';

export interface GatewayLimiterOptions {
  /** MAX_GATEWAY_CALLS: gateway calls in flight at once. */
  readonly maxInFlight: number;
  /** DEADLINE_MS: the whole time a call may take, waiting for a slot included. */
  readonly deadlineMs: number;
  readonly clock: Clock;
  /** Share of the remaining time an estimate may use before the call is refused (default 0.8). */
  readonly headroom?: number;
  /** Called when a call is refused at once (`overloaded`) or runs out of time while queued (`expired`). */
  readonly onReject?: (reason: 'overloaded' | 'expired') => void;
}

interface Waiter {
  readonly deadline: number;
  readonly start: () => void;
  readonly fail: (err: KeygateError) => void;
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
 * The average lags when the gateway slows down under a burst, so a queued call is watched too:
 * once its remaining time no longer covers one call it is shed the same way, never sent. One
 * whose deadline passed fails with GATEWAY_TIMEOUT. A call that starts passes what is left of
 * its deadline on (CallOptions.budgetMs).
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

  /** Closes the client it wraps. */
  close(): Promise<void> {
    return this.#inner.close();
  }

  async #run<T>(options: CallOptions | undefined, call: (budgetMs: number) => Promise<T>): Promise<T> {
    const now = this.#o.clock.now().getTime();
    const deadline = now + Math.min(this.#o.deadlineMs, options?.budgetMs ?? Number.POSITIVE_INFINITY);
    if (deadline <= now) {
      // The caller has no time left: an answer could not reach it, so nothing is sent.
      this.expired++;
      this.#o.onReject?.('expired');
      throw new KeygateError('GATEWAY_TIMEOUT', { detail: { reason: 'no time left' } });
    }
    // A waiter is handed its slot (counted in #inFlight) by #startNext before it resumes here.
    if (this.#inFlight >= this.#o.maxInFlight) await this.#wait(now, deadline);
    else this.#inFlight++;
    const started = this.#o.clock.now().getTime();
    try {
      return await call(deadline - started);
    } finally {
      this.#inFlight--;
      const took = this.#o.clock.now().getTime() - started;
      this.#ewmaMs += EWMA_WEIGHT * (took - this.#ewmaMs);
      this.#startNext();
    }
  }

  /** Resolves when a slot is free for this call; rejects when it cannot or did not start in time. */
  #wait(now: number, deadline: number): Promise<void> {
    const callMs = this.#ewmaMs;
    const expected = (this.#queued / this.#o.maxInFlight + 1) * callMs;
    if (expected >= (deadline - now) * (this.#o.headroom ?? 0.8)) {
      this.rejected++;
      this.#o.onReject?.('overloaded');
      return Promise.reject(
        new KeygateError('OVERLOADED', {
          detail: {
            queued: this.#queued,
            inFlight: this.#inFlight,
            expectedMs: Math.round(expected),
            budgetMs: Math.round(deadline - now),
          },
        }),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { deadline, done: false, timer: undefined, start: resolve, fail: reject };
      this.#queue.push(w);
      this.#queued++;
      this.#watch(w, now, callMs);
    });
  }

  /** Sheds `w` once its remaining time no longer covers one call, re-checking as the estimate moves. */
  #watch(w: Waiter, now: number, callMs: number): void {
    w.timer = setTimeout(
      () => {
        if (w.done) return;
        const t = this.#o.clock.now().getTime();
        const need = this.#ewmaMs;
        if (w.deadline - t > need) return this.#watch(w, t, need);
        w.done = true;
        this.#queued--;
        this.expired++;
        this.#o.onReject?.('expired');
        w.fail(
          new KeygateError('OVERLOADED', {
            detail: {
              reason: 'cannot finish in time',
              leftMs: Math.round(w.deadline - t),
              expectedMs: Math.round(need),
            },
          }),
        );
      },
      Math.max(0, w.deadline - now - callMs),
    );
  }

  /** Hands the freed slot to the oldest waiter that is still waiting. */
  #startNext(): void {
    while (this.#head < this.#queue.length && this.#inFlight < this.#o.maxInFlight) {
      const w = this.#queue[this.#head++] as Waiter;
      if (w.done) continue;
      w.done = true;
      this.#queued--;
      clearTimeout(w.timer);
      if (this.#o.clock.now().getTime() >= w.deadline) {
        this.expired++;
        this.#o.onReject?.('expired');
        w.fail(new KeygateError('GATEWAY_TIMEOUT', { detail: { reason: 'deadline passed while queued' } }));
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
