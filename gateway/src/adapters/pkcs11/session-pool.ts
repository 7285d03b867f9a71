import { isKeygateError, KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import { ckrKind, ckrName, ckrToKeygate, ckrUnavailable, retryReason } from './ckr-map.js';
import {
  DEFAULT_HUNG_PROBE_INTERVAL_MS,
  DEFAULT_OPERATION_TIMEOUT_MS,
  giveUpAfter,
  HungCalls,
  OperationTimedOut,
} from './hung-calls.js';
import { OpenBackoff } from './open-backoff.js';
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
  /** Calls given up as hung that have not returned, after which no more are sent (HungCalls); default `size`. */
  readonly maxHungCalls?: number;
  /** While none are sent, one is let through this often (HungCalls); default 5 s. */
  readonly hungProbeIntervalMs?: number;
  readonly now?: () => number;
}

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
  #abandoned = 0;
  readonly #hung: HungCalls;
  readonly #backoff: OpenBackoff;
  #closed = false;
  #paused = false;
  readonly #idleWaiters: Array<() => void> = [];
  /** Called when sessions were lost: the login went with them, and so did object handles. */
  onSessionsLost: () => void = () => undefined;
  /** Called after each failed open, with the number of failures in a row. */
  onOpenFailed: (failures: number) => void = () => undefined;

  constructor(
    private readonly token: Pkcs11Token,
    private readonly options: SessionPoolOptions,
    private readonly logger: Logger,
  ) {
    const now = options.now ?? Date.now;
    this.#backoff = new OpenBackoff({
      initialMs: options.backoffInitialMs ?? 200,
      maxMs: options.backoffMaxMs ?? 10_000,
      now,
    });
    this.#hung = new HungCalls({
      max: Math.max(1, options.maxHungCalls ?? options.size),
      probeIntervalMs: options.hungProbeIntervalMs ?? DEFAULT_HUNG_PROBE_INTERVAL_MS,
      now,
      logger,
    });
  }

  get stats(): { open: number; busy: number; waiting: number; hung: number } {
    return { open: this.#open, busy: this.#busy, waiting: this.#waiters.length, hung: this.#hung.count };
  }

  /** Why new sessions cannot be opened right now, if so. */
  get failure(): string | undefined {
    return this.#backoff.failure;
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
        const retry = retryReason(err, decrypting, attempt);
        const kind = ckrKind(err, decrypting);
        if (retry === 'fresh') this.release(session, true);
        else if (kind === 'session' || kind === 'device') this.lost(session, kind, ckrName(err), attempt);
        else this.release(session, false);
        if (kind === 'handle') onStaleHandle();
        if (retry !== undefined) continue;
        throw ckrToKeygate(err, decrypting);
      }
    }
  }

  /** Runs `work`, giving up after the operation timeout (the session is then abandoned). */
  #timed<T>(session: Handle, work: SessionWork<T>): Promise<T> {
    const ms = this.options.operationTimeoutMs ?? DEFAULT_OPERATION_TIMEOUT_MS;
    return giveUpAfter(work(session), ms, () => this.abandon(session, 'an operation did not return in time'));
  }

  /**
   * Gives up a lent session whose call does not return (a hung HSM): it is not used or closed
   * from here (closing could hang too), and a new one may open in its place. Call the returned
   * function when the call comes back after all: the session is closed then, and the call no
   * longer counts towards maxHungCalls.
   */
  abandon(session: Handle, reason: string): () => void {
    this.#abandoned++;
    const returned = this.#hung.add(() => this.token.closeQuietly(session));
    this.logger.error(
      { abandoned: this.#abandoned, hung: this.#hung.count, reason },
      'pkcs11 session abandoned (a call hung); opening another',
    );
    this.#busy--;
    this.#open--;
    const blocked = this.#hung.failure;
    if (blocked !== undefined) {
      // Enough calls hang: the operations waiting for a session fail now rather than join them.
      const err = new KeygateError('HSM_UNAVAILABLE', { detail: { reason: blocked } });
      for (const w of this.#waiters.splice(0)) w.reject(err);
    }
    this.#handOver();
    return returned;
  }

  /** Why no calls are sent now (too many hang), or undefined. */
  get hungFailure(): string | undefined {
    return this.#hung.failure;
  }

  /** A call returned: the HSM answers (calls held back because others hang flow again). */
  answered(): void {
    this.#hung.answered();
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
    this.#backoff.reset();
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
    this.#backoff.cancel();
    this.dropIdle();
    for (const w of this.#waiters.splice(0))
      w.reject(new KeygateError('HSM_UNAVAILABLE', { detail: { reason: 'closing' } }));
  }

  private async acquire(): Promise<Handle> {
    if (this.#closed) throw new KeygateError('HSM_UNAVAILABLE', { detail: { reason: 'closing' } });
    if (this.#paused) throw recovering();
    this.#hung.admit();
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
    this.#handOver();
  }

  /**
   * A session came free (or room for one): wakes whenIdle() callers once none is lent, and hands
   * the next waiter an idle session or a new one (a failure to open goes to that waiter).
   */
  #handOver(): void {
    if (this.#busy === 0) for (const done of this.#idleWaiters.splice(0)) done();
    const waiter = this.#waiters.shift();
    if (waiter === undefined) return;
    try {
      waiter.resolve(this.#idle.pop() ?? this.openSession());
    } catch (err) {
      waiter.reject(err);
    }
  }

  private openSession(): Handle {
    const unusable = this.token.unusable;
    if (unusable) throw new KeygateError(unusable.code, { detail: { tokenLabel: this.token.label } });
    if (this.#paused) throw recovering();
    const waiting = this.#backoff.blocked();
    if (waiting !== undefined) throw new KeygateError('HSM_UNAVAILABLE', { detail: { reason: waiting } });
    try {
      const s = this.token.openSession();
      this.#open++;
      if (this.#backoff.opened()) this.logger.info({ token: this.token.label }, 'pkcs11 sessions restored');
      return s;
    } catch (err) {
      // Whatever the CKR (a broken module answers CKR_GENERAL_ERROR), no session is a 503: the
      // pool and the recovery retry by themselves. A refused PIN stays what it is.
      const mapped = isKeygateError(err) ? err : ckrUnavailable(err);
      if (mapped.code === 'HSM_PIN_INCORRECT' || mapped.code === 'HSM_PIN_LOCKED') throw mapped;
      const { delayMs: delay, failures } = this.#backoff.failed(
        `cannot open a session on token "${this.token.label}" (${String(mapped.detail?.ckr ?? mapped.detail?.reason ?? mapped.code)}); retrying`,
      );
      this.token.forgetSlot();
      this.logger.warn({ ...mapped.toLog(), delayMs: delay }, 'pkcs11 session open failed; backing off');
      this.scheduleReopen(delay);
      this.onOpenFailed(failures);
      throw mapped;
    }
  }

  private scheduleReopen(delay: number): void {
    if (this.#closed) return;
    this.#backoff.schedule(delay, () => {
      if (this.#closed || this.#open > 0) return;
      try {
        this.warmUp();
      } catch {
        // openSession logged it and scheduled the next attempt.
      }
    });
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
