export type BreakerState = 'closed' | 'open' | 'half-open';

export interface BreakerOptions {
  /** Consecutive failures that open the breaker. */
  readonly failureThreshold: number;
  /** How long an open breaker refuses calls before one trial call is let through. */
  readonly openMs: number;
  readonly now: () => number;
}

/**
 * A circuit breaker for one gateway URL: after `failureThreshold` consecutive failures it fails
 * fast for `openMs`, then lets one trial call through (half-open) to decide.
 */
export class CircuitBreaker {
  #state: BreakerState = 'closed';
  #failures = 0;
  #openedAt = 0;
  #trialRunning = false;
  readonly #o: BreakerOptions;
  onChange: ((state: BreakerState) => void) | undefined;

  constructor(options: BreakerOptions) {
    this.#o = options;
  }

  get state(): BreakerState {
    return this.#state;
  }

  /** True when a call may go out now (claims the single trial slot when half-open). */
  tryAcquire(): boolean {
    if (this.#state === 'closed') return true;
    if (this.#state === 'open') {
      if (this.#o.now() - this.#openedAt < this.#o.openMs) return false;
      this.#set('half-open');
    }
    if (this.#trialRunning) return false;
    this.#trialRunning = true;
    return true;
  }

  onSuccess(): void {
    this.#failures = 0;
    this.#trialRunning = false;
    this.#set('closed');
  }

  /** An outcome that says nothing about the URL (the caller ran out of time): frees the trial slot only. */
  release(): void {
    this.#trialRunning = false;
  }

  onFailure(): void {
    this.#trialRunning = false;
    this.#failures++;
    if (this.#state === 'half-open' || this.#failures >= this.#o.failureThreshold) {
      this.#openedAt = this.#o.now();
      this.#set('open');
    }
  }

  #set(state: BreakerState): void {
    if (state === this.#state) return;
    this.#state = state;
    this.onChange?.(state);
  }
}

/** Exponential backoff with full jitter: a random delay in [0, min(cap, base·2^attempt)]. */
export function backoffMs(attempt: number, baseMs: number, capMs: number, random01: () => number): number {
  return Math.floor(random01() * Math.min(capMs, baseMs * 2 ** attempt));
}
