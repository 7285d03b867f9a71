/**
 * The pace of session opens after failures: exponential from `initialMs` to `maxMs`. Opening fails
 * fast inside a backoff window (blocked()), and a timer (schedule()) tries again at its end.
 */
export class OpenBackoff {
  #failures = 0;
  #retryAt = 0;
  #lastFailure: string | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(private readonly o: { initialMs: number; maxMs: number; now: () => number }) {}

  /** Why sessions cannot be opened right now, if the last open failed. */
  get failure(): string | undefined {
    return this.#lastFailure;
  }

  /** The reason to fail an open now without trying (inside the window), or undefined. */
  blocked(): string | undefined {
    return this.o.now() < this.#retryAt ? (this.#lastFailure ?? 'backoff') : undefined;
  }

  /** An open worked; true when it had been failing (sessions are restored). */
  opened(): boolean {
    const restored = this.#failures > 0;
    this.#failures = 0;
    this.#lastFailure = undefined;
    return restored;
  }

  /** An open failed for `reason`: the window grows; returns its length and the failures in a row. */
  failed(reason: string): { delayMs: number; failures: number } {
    this.#failures++;
    const delayMs = Math.min(this.o.maxMs, this.o.initialMs * 2 ** Math.min(this.#failures - 1, 16));
    this.#retryAt = this.o.now() + delayMs;
    this.#lastFailure = reason;
    return { delayMs, failures: this.#failures };
  }

  /** The next open may try at once. */
  reset(): void {
    this.#retryAt = 0;
  }

  /** Runs `reopen` just after the window unless a timer is already set. */
  schedule(delayMs: number, reopen: () => void): void {
    if (this.#timer) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      reopen();
    }, delayMs + 1);
    this.#timer.unref();
  }

  cancel(): void {
    if (this.#timer) clearTimeout(this.#timer);
  }
}
