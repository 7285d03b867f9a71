import { isKeygateError, KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import { ckrKind, ckrName, ckrToKeygate, ckrUnavailable } from './ckr-map.js';
import type { Pkcs11Token } from './pkcs11-token.js';

type Handle = Buffer;

export interface SessionPoolOptions {
  /** Sessions open at most; one operation in flight per session. */
  readonly size: number;
  /** First and largest delay between reopen attempts after a device failure. */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /**
   * An operation still running after this long is given up: its caller gets HSM_UNAVAILABLE and
   * its session is abandoned (never used again, replaced by a new one; closed if the call ever
   * returns). A hung network HSM then costs a session, not the pool. Default 10 s; 0 turns it off.
   */
  readonly operationTimeoutMs?: number;
  /**
   * Calls given up as hung that have not returned, after which no more calls are sent (503 at
   * once): each holds a thread (libuv pool or worker) for as long as the module keeps it, so a
   * lasting hang must not take one more per timeout. Default: `size`. Calls hung and forgotten
   * (see answered) never exceed twice this.
   */
  readonly maxHungCalls?: number;
  /** While no calls are sent, one is let through this often to see whether the HSM answers; default 5 s. */
  readonly hungProbeIntervalMs?: number;
  readonly now?: () => number;
}

/** Default of SessionPoolOptions.hungProbeIntervalMs. */
const DEFAULT_HUNG_PROBE_INTERVAL_MS = 5_000;

/** Default of SessionPoolOptions.operationTimeoutMs. */
export const DEFAULT_OPERATION_TIMEOUT_MS = 10_000;

/** What a pooled operation gets: a logged-in session. */
export type SessionWork<T> = (session: Handle) => Promise<T>;

/**
 * A fixed-size pool of logged-in sessions. A lost session (closed, device error) is dropped with
 * every idle one, and the operation is tried up to twice more on a fresh session, so a reset HSM heals
 * without a restart. Opening fails fast during a backoff window, which a timer ends by reopening.
 */
export class SessionPool {
  readonly #idle: Handle[] = [];
  readonly #waiters: Array<{ resolve: (s: Handle) => void; reject: (e: unknown) => void }> = [];
  #open = 0;
  #busy = 0;
  #failures = 0;
  #abandoned = 0;
  /** Calls given up as hung that have not returned (their threads are still in the module). */
  readonly #hung = new Set<number>();
  /** Hung calls left behind once the HSM answered again; they still hold their threads. */
  readonly #forgotten = new Set<number>();
  #hungSeq = 0;
  #probeAt = 0;
  #retryAt = 0;
  #lastFailure: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #paused = false;
  readonly #idleWaiters: Array<() => void> = [];
  readonly #now: () => number;
  /** Called when sessions were lost: the login went with them, and so did object handles. */
  onSessionsLost: () => void = () => undefined;
  /** Called after each failed open, with the number of failures in a row. */
  onOpenFailed: (failures: number) => void = () => undefined;

  constructor(
    private readonly token: Pkcs11Token,
    private readonly options: SessionPoolOptions,
    private readonly logger: Logger,
  ) {
    this.#now = options.now ?? Date.now;
  }

  get stats(): { open: number; busy: number; waiting: number; hung: number } {
    return { open: this.#open, busy: this.#busy, waiting: this.#waiters.length, hung: this.hungCalls };
  }

  /** Why new sessions cannot be opened right now, if so. */
  get failure(): string | undefined {
    return this.#lastFailure;
  }

  /** Opens one session now (start-up check and readiness); throws the mapped error. */
  warmUp(): void {
    const s = this.openSession();
    this.#idle.push(s);
  }

  /**
   * Runs `work` on a session; on a lost session or stale handle, up to twice more on a fresh one.
   * `decrypting` maps CKR_GENERAL_ERROR to a data error (SoftHSM2's answer to a bad GCM tag).
   */
  async use<T>(work: SessionWork<T>, onStaleHandle: () => void, decrypting = false): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const session = await this.acquire();
      try {
        const out = await this.#timed(session, work);
        this.release(session, false);
        this.answered();
        return out;
      } catch (err) {
        if (err instanceof OperationTimedOut) throw err.error;
        if (isKeygateError(err)) {
          this.release(session, false);
          throw err;
        }
        // A failed decrypt is tried once more on a fresh session: CKR_GENERAL_ERROR is both
        // SoftHSM2's answer to a wrong tag and a network HSM's answer mid-failover, and a
        // glitch must never read as "this ciphertext is bad". A wrong tag fails again.
        if (decrypting && attempt === 0 && ckrName(err) === 'CKR_GENERAL_ERROR') {
          this.release(session, true);
          continue;
        }
        const kind = ckrKind(err, decrypting);
        if (kind === 'session' || kind === 'device') {
          this.lost(session, kind, ckrName(err), attempt);
          if (attempt < 2) continue;
        } else if (kind === 'handle') {
          this.release(session, false);
          onStaleHandle();
          if (attempt < 2) continue;
        } else {
          this.release(session, false);
        }
        throw ckrToKeygate(err, decrypting);
      }
    }
  }

  /** Runs `work`, giving up after the operation timeout (the session is then abandoned). */
  #timed<T>(session: Handle, work: SessionWork<T>): Promise<T> {
    const ms = this.options.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    const running = work(session);
    if (ms <= 0) return running;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // If the call ever returns, its session is closed and its thread counts no more.
        const returned = this.abandon(session, 'an operation did not return in time');
        running.then(returned, returned);
        reject(
          new OperationTimedOut(
            new KeygateError('HSM_UNAVAILABLE', {
              detail: { reason: `no answer from the HSM within ${ms} ms` },
            }),
          ),
        );
      }, ms);
      timer.unref();
    });
    return Promise.race([running, late]).finally(() => clearTimeout(timer));
  }

  /**
   * Gives up a lent session whose call does not return (a hung HSM): it is not used or closed
   * from here (closing could hang too), and a new one may open in its place. Call the returned
   * function when the call comes back after all: the session is closed then, and the call no
   * longer counts towards maxHungCalls.
   */
  abandon(session: Handle, reason: string): () => void {
    this.#abandoned++;
    const id = ++this.#hungSeq;
    this.#hung.add(id);
    if (this.#hung.size === this.#maxHung) {
      // Blocked from now: the first probe goes out one interval later, not at once.
      this.#probeAt = this.#now() + (this.options.hungProbeIntervalMs ?? DEFAULT_HUNG_PROBE_INTERVAL_MS);
    }
    this.logger.error(
      { abandoned: this.#abandoned, hung: this.#hung.size + this.#forgotten.size, reason },
      'pkcs11 session abandoned (a call hung); opening another',
    );
    let done = false;
    const returned = () => {
      if (done) return;
      done = true;
      this.#hung.delete(id);
      this.#forgotten.delete(id);
      this.token.closeQuietly(session);
      this.logger.info(
        { hung: this.#hung.size + this.#forgotten.size },
        'pkcs11 call given up as hung returned; its session is closed',
      );
    };
    this.#busy--;
    this.#open--;
    if (this.#busy === 0) for (const done of this.#idleWaiters.splice(0)) done();
    const blocked = this.hungFailure;
    if (blocked !== undefined) {
      // Enough calls hang: the operations waiting for a session fail now rather than join them.
      const err = new KeygateError('HSM_UNAVAILABLE', { detail: { reason: blocked } });
      for (const w of this.#waiters.splice(0)) w.reject(err);
      return returned;
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      try {
        waiter.resolve(this.#idle.pop() ?? this.openSession());
      } catch (err) {
        waiter.reject(err);
      }
    }
    return returned;
  }

  /** Sessions given up because a call hung (since start). */
  get abandoned(): number {
    return this.#abandoned;
  }

  /** Calls given up as hung that have not returned yet. */
  get hungCalls(): number {
    return this.#hung.size + this.#forgotten.size;
  }

  /** Why no calls are sent now (too many hang), or undefined. */
  get hungFailure(): string | undefined {
    const max = this.#maxHung;
    const stuck = this.#hung.size + this.#forgotten.size;
    if (stuck >= 2 * max)
      return `${stuck} calls to the HSM have not returned (the most hsm.maxHungCalls allows); no more are sent until one does`;
    if (this.#hung.size >= max)
      return `${this.#hung.size} calls to the HSM have not returned; no more are sent until one does (one every ${Math.round((this.options.hungProbeIntervalMs ?? DEFAULT_HUNG_PROBE_INTERVAL_MS) / 1000)} s to see whether it answers)`;
    return undefined;
  }

  /**
   * A call returned: the HSM answers. If calls were held back because others hang, those are left
   * behind (they keep their threads until they return, within twice maxHungCalls) and calls flow again.
   */
  answered(): void {
    if (this.#hung.size < this.#maxHung) return;
    this.logger.warn(
      { hung: this.#hung.size, leftBehind: this.#forgotten.size + this.#hung.size },
      'pkcs11: the HSM answers again; calls that hung are left behind',
    );
    for (const id of this.#hung) this.#forgotten.add(id);
    this.#hung.clear();
  }

  get #maxHung(): number {
    return Math.max(1, this.options.maxHungCalls ?? this.options.size);
  }

  /** Refuses a call while too many hang (HSM_UNAVAILABLE at once), but for a probe now and then. */
  #admit(): void {
    const reason = this.hungFailure;
    if (reason === undefined) return;
    const stuck = this.#hung.size + this.#forgotten.size;
    const now = this.#now();
    if (stuck < 2 * this.#maxHung && now >= this.#probeAt) {
      this.#probeAt = now + (this.options.hungProbeIntervalMs ?? DEFAULT_HUNG_PROBE_INTERVAL_MS);
      return;
    }
    throw new KeygateError('HSM_UNAVAILABLE', { detail: { reason } });
  }

  /** Takes a session for longer than one operation (a worker thread's own); give it back with checkin or lost. */
  checkout(): Promise<Handle> {
    return this.acquire();
  }

  /** Returns a checked-out session that still works. */
  checkin(session: Handle): void {
    this.release(session, false);
  }

  /**
   * A call on `session` failed because the session or the device is gone: close it and every idle
   * one (the login went with them), so the next operation opens fresh sessions and logs in again.
   */
  lost(session: Handle, kind: 'session' | 'device', ckr: string | undefined, attempt: number): void {
    this.logger.warn({ ckr, attempt }, 'pkcs11 session lost; reopening');
    this.release(session, true);
    this.dropIdle();
    this.onSessionsLost();
    if (kind === 'device') this.token.forgetSlot();
  }

  /** Closes the idle sessions and forgets object handles (recovery: look at the token afresh). */
  discardIdle(): void {
    this.dropIdle();
    this.onSessionsLost();
  }

  /** Lets the next open try at once, whatever the backoff (recovery decides its own pace). */
  resetBackoff(): void {
    this.#retryAt = 0;
  }

  /**
   * Stops lending sessions until resume(): new and waiting operations fail at once with
   * HSM_UNAVAILABLE, so the module can be re-initialised once the calls in flight are done.
   */
  pause(): void {
    this.#paused = true;
    for (const w of this.#waiters.splice(0)) w.reject(recovering());
  }

  resume(): void {
    this.#paused = false;
  }

  /** Resolves true once no session is lent out (no call of this pool in flight), false after `ms`. */
  whenIdle(ms: number): Promise<boolean> {
    if (this.#busy === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        const i = this.#idleWaiters.indexOf(done);
        if (i >= 0) this.#idleWaiters.splice(i, 1);
        resolve(false);
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.#idleWaiters.push(done);
    });
  }

  /** Closes every session; waiting operations fail with HSM_UNAVAILABLE. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.dropIdle();
    for (const w of this.#waiters.splice(0))
      w.reject(new KeygateError('HSM_UNAVAILABLE', { detail: { reason: 'closing' } }));
  }

  private async acquire(): Promise<Handle> {
    if (this.#closed) throw new KeygateError('HSM_UNAVAILABLE', { detail: { reason: 'closing' } });
    if (this.#paused) throw recovering();
    this.#admit();
    const idle = this.#idle.pop();
    if (idle !== undefined) {
      this.#busy++;
      return idle;
    }
    if (this.#open < this.options.size) {
      const s = this.openSession();
      this.#busy++;
      return s;
    }
    return new Promise<Handle>((resolve, reject) => this.#waiters.push({ resolve, reject })).then((s) => {
      this.#busy++;
      return s;
    });
  }

  private release(session: Handle, broken: boolean): void {
    this.#busy--;
    if (broken) {
      this.token.closeQuietly(session);
      this.#open--;
    } else {
      this.#idle.push(session);
    }
    if (this.#busy === 0) for (const done of this.#idleWaiters.splice(0)) done();
    const waiter = this.#waiters.shift();
    if (waiter === undefined) return;
    // Hand over an idle session or open a new one; a failure to open goes to that waiter.
    const next = this.#idle.pop();
    if (next !== undefined) {
      waiter.resolve(next);
      return;
    }
    try {
      waiter.resolve(this.openSession());
    } catch (err) {
      waiter.reject(err);
    }
  }

  private openSession(): Handle {
    const unusable = this.token.unusable;
    if (unusable) throw new KeygateError(unusable.code, { detail: { tokenLabel: this.token.label } });
    if (this.#paused) throw recovering();
    if (this.#now() < this.#retryAt) {
      throw new KeygateError('HSM_UNAVAILABLE', { detail: { reason: this.#lastFailure ?? 'backoff' } });
    }
    try {
      const s = this.token.openSession();
      this.#open++;
      if (this.#failures > 0) this.logger.info({ token: this.token.label }, 'pkcs11 sessions restored');
      this.#failures = 0;
      this.#lastFailure = undefined;
      return s;
    } catch (err) {
      // Whatever the CKR (a broken module answers CKR_GENERAL_ERROR), no session is a 503: the
      // pool and the recovery retry by themselves. A refused PIN stays what it is.
      const mapped = isKeygateError(err) ? err : ckrUnavailable(err);
      if (mapped.code === 'HSM_PIN_INCORRECT' || mapped.code === 'HSM_PIN_LOCKED') throw mapped;
      this.#failures++;
      const initial = this.options.backoffInitialMs ?? 200;
      const delay = Math.min(
        this.options.backoffMaxMs ?? 10_000,
        initial * 2 ** Math.min(this.#failures - 1, 16),
      );
      this.#retryAt = this.#now() + delay;
      this.#lastFailure = `cannot open a session on token "${this.token.label}" (${String(mapped.detail?.ckr ?? mapped.detail?.reason ?? mapped.code)}); retrying`;
      this.token.forgetSlot();
      this.logger.warn({ ...mapped.toLog(), delayMs: delay }, 'pkcs11 session open failed; backing off');
      this.scheduleReopen(delay);
      this.onOpenFailed(this.#failures);
      throw mapped;
    }
  }

  private scheduleReopen(delay: number): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#closed || this.#open > 0) return;
      try {
        this.warmUp();
      } catch {
        // openSession logged it and scheduled the next attempt.
      }
    }, delay + 1);
    this.#timer.unref();
  }

  private dropIdle(): void {
    for (const s of this.#idle.splice(0)) {
      this.token.closeQuietly(s);
      this.#open--;
    }
  }
}

function recovering(): KeygateError {
  return new KeygateError('HSM_UNAVAILABLE', { detail: { reason: 'recovering' } });
}

/** Carries the timeout's error past use()'s retry logic: a hung call is not tried again. */
class OperationTimedOut extends Error {
  constructor(readonly error: KeygateError) {
    super(error.message);
  }
}
