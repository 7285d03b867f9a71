import { isKeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import type { HsmRecoveryStatus } from '../../core/keys/hsm.js';
import type { Pkcs11Token } from './pkcs11-token.js';
import type { SessionPool } from './session-pool.js';

type Handle = Buffer;

/** reopen: fresh sessions and slot; reinit: C_Finalize + C_Initialize; find: look again only. */
export type RecoveryStep = 'reopen' | 'reinit' | 'find';
type Outcome = 'recovered' | 'missing' | 'failed' | 'busy';

export interface KeyObjectRecoveryOptions {
  readonly token: Pkcs11Token;
  readonly pool: SessionPool;
  readonly logger: Logger;
  /** Whether an object with `label` exists, looked up on `session`. */
  readonly exists: (session: Handle, label: string) => boolean;
  /** First and largest delay between rounds (defaults 200 ms and 5 s). */
  readonly backoffInitialMs?: number;
  readonly backoffMaxMs?: number;
  /** How long a re-initialisation waits for the calls in flight (default 5 s). */
  readonly quiesceMs?: number;
  /** Once other keys work again, a missing object nobody asked for this long is dropped (10 min). */
  readonly forgetAfterMs?: number;
  /** No operation worked for this long (or since the episode began): a whole-token fault (10 s). */
  readonly servedWindowMs?: number;
  readonly now?: () => number;
}

/** How recovery bears on readiness: a whole-token fault blocks it, one lost object only warns. */
export interface RecoveryProblem {
  readonly blocking: boolean;
  readonly reason: string;
}

const LISTED = 5;

/**
 * Recovers key objects that the store says are live but the token did not find (a token folder
 * briefly gone, an HSM failing over), and a module whose sessions cannot be opened any more.
 * One episode at a time, rounds with backoff: drop the sessions and handles and look again; while
 * no operation has worked lately, re-initialise the module (SoftHSM2 sees its token folder again
 * only after C_Finalize + C_Initialize). While other keys work, a still missing object is a lost
 * object, not a token fault: it is looked for again and the module left alone.
 * It never logs in on its own after a refused PIN: the token's `unusable` ends every episode.
 */
export class KeyObjectRecovery {
  readonly #o: KeyObjectRecoveryOptions;
  readonly #now: () => number;
  /** Label → when a request last reported it missing. */
  readonly #missing = new Map<string, number>();
  readonly #steps = new Map<string, number>();
  #episode = 0;
  #active = false;
  /** When an operation that started in this episode last worked. */
  #servedAt: number | undefined;
  #startedAt = 0;
  #attempt = 0;
  #nextAt: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** A round is running; a round due meanwhile waits for it (one at a time, never two re-inits). */
  #running = false;
  #due = false;
  #closed = false;

  constructor(options: KeyObjectRecoveryOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** The current episode; an operation notes it when it starts and hands it to served(). */
  get episode(): number {
    return this.#episode;
  }

  /** The store says `label` is live but the token did not find it: track it, start or join recovery. */
  missing(label: string): void {
    if (this.#closed) return;
    this.#missing.set(label, this.#now());
    this.#start('key objects not found');
  }

  /** Opening sessions keeps failing although the pool backs off: recover the module. */
  sessionsFailing(): void {
    if (!this.#closed) this.#start('sessions cannot be opened');
  }

  /** An operation on `label` that started in `episode` worked: the token serves (and has `label`). */
  served(label: string, episode: number): void {
    if (!this.#active || episode !== this.#episode) return;
    this.#servedAt = this.#now();
    this.#missing.delete(label);
    if (this.#done()) this.#end();
  }

  /** `label` was destroyed on purpose: stop expecting it. */
  forget(label: string): void {
    if (this.#missing.delete(label) && this.#active && this.#done()) this.#end();
  }

  /** The numbers for /readyz and /metrics, and the readiness problem while an episode runs. */
  status(): { recovery: HsmRecoveryStatus; problem: RecoveryProblem | undefined } {
    const missing = [...this.#missing.keys()];
    const recovery: HsmRecoveryStatus = {
      missing: missing.slice(0, LISTED),
      missingCount: missing.length,
      attempt: this.#attempt,
      nextTryInMs: this.#nextAt === undefined ? undefined : Math.max(0, this.#nextAt - this.#now()),
      steps: [...this.#steps].map(([k, count]) => {
        const [step = '', outcome = ''] = k.split(' ');
        return { step, outcome, count };
      }),
    };
    if (!this.#active || missing.length === 0) return { recovery, problem: undefined };
    const listed = `${missing.slice(0, LISTED).join(', ')}${missing.length > LISTED ? `, +${missing.length - LISTED} more` : ''}`;
    const token = `token "${this.#o.token.label}"`;
    if (!this.#wholeToken()) {
      return {
        recovery,
        problem: {
          blocking: false,
          reason: `key objects the store lists as active are not on ${token}, other keys work: ${listed} (removed outside keygate? restore them from an HSM backup)`,
        },
      };
    }
    const next = this.#o.token.unusable
      ? 'stopped: login refused'
      : recovery.nextTryInMs === undefined
        ? 'running'
        : `next in ${recovery.nextTryInMs} ms`;
    return {
      recovery,
      problem: {
        blocking: true,
        reason: `key objects the store lists as active are not found on ${token} and no key operation works (since ${new Date(this.#startedAt).toISOString()}): ${listed}; recovering (attempt ${this.#attempt}, ${next})`,
      },
    };
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #start(reason: string): void {
    if (this.#active || this.#o.token.unusable) return;
    this.#active = true;
    this.#episode++;
    this.#servedAt = undefined;
    this.#startedAt = this.#now();
    this.#attempt = 0;
    this.#o.logger.warn(
      { reason, missing: [...this.#missing.keys()].slice(0, LISTED), missingCount: this.#missing.size },
      'pkcs11 recovery started',
    );
    this.#schedule(0);
  }

  #end(): void {
    this.#active = false;
    this.#nextAt = undefined;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#o.logger.info(
      { attempts: this.#attempt, durationMs: this.#now() - this.#startedAt },
      'pkcs11 recovery ended',
    );
  }

  #schedule(delay: number): void {
    this.#nextAt = this.#now() + delay;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#nextAt = undefined;
      if (this.#running) {
        this.#due = true;
        return;
      }
      this.#running = true;
      void this.#round().finally(() => {
        this.#running = false;
        if (this.#due && this.#active && this.#timer === undefined) this.#schedule(0);
        this.#due = false;
      });
    }, delay);
    this.#timer.unref();
  }

  async #round(): Promise<void> {
    const episode = this.#episode;
    const current = () => this.#active && !this.#closed && this.#episode === episode;
    if (!current()) return;
    this.#expire();
    if (this.#done()) return this.#end();
    this.#attempt++;
    const whole = this.#wholeToken();
    let ok = false;
    if (this.#attempt === 1 || !whole) ok = await this.#run(whole ? 'reopen' : 'find');
    if (!ok && whole && current() && !this.#o.token.unusable) ok = await this.#run('reinit');
    if (!current()) return;
    if (ok || this.#done()) return this.#end();
    if (this.#o.token.unusable) {
      // The login was refused: an operator must act. No more rounds, so no second login.
      this.#o.logger.error({ tokenLabel: this.#o.token.label }, 'pkcs11 recovery stopped: login refused');
      return;
    }
    const initial = this.#o.backoffInitialMs ?? 200;
    this.#schedule(Math.min(this.#o.backoffMaxMs ?? 5000, initial * 2 ** Math.min(this.#attempt - 1, 16)));
  }

  /** One step; true when every tracked object was found and sessions open again. */
  async #run(step: RecoveryStep): Promise<boolean> {
    const { pool, token } = this.#o;
    try {
      if (step === 'reinit') {
        pool.pause();
        try {
          if (!(await pool.whenIdle(this.#o.quiesceMs ?? 5000))) {
            // A call is still in the device: finalizing under it is undefined behaviour.
            this.#count(step, 'busy');
            return false;
          }
          if (!this.#active) return false; // operations worked again meanwhile
          pool.discardIdle();
          token.reinitialize();
        } finally {
          pool.resume();
        }
      } else if (step === 'reopen') {
        pool.discardIdle();
        token.forgetSlot();
      }
      pool.resetBackoff();
      const labels = [...this.#missing.keys()];
      const still = await pool.use(
        async (s) => labels.filter((l) => !this.#o.exists(s, l)),
        () => undefined,
      );
      for (const l of labels) if (!still.includes(l)) this.#missing.delete(l);
      const ok = this.#done();
      this.#count(step, ok ? 'recovered' : 'missing');
      return ok;
    } catch (err) {
      this.#count(step, 'failed');
      this.#o.logger.debug(
        {
          step,
          code: isKeygateError(err) ? err.code : 'unknown',
          ckr: isKeygateError(err) ? err.detail?.ckr : undefined,
        },
        'pkcs11 recovery step failed',
      );
      return false;
    }
  }

  /** Nothing missing, and sessions open (or operations work, whatever an old open failure says). */
  #done(): boolean {
    return this.#missing.size === 0 && (!this.#wholeToken() || this.#o.pool.failure === undefined);
  }

  /** Nothing has worked lately: the token or the module is at fault, not one object. */
  #wholeToken(): boolean {
    return this.#servedAt === undefined || this.#now() - this.#servedAt > (this.#o.servedWindowMs ?? 10_000);
  }

  /** Drops objects nobody asked for lately, once other keys work (they may have been destroyed elsewhere). */
  #expire(): void {
    if (this.#wholeToken()) return;
    const before = this.#now() - (this.#o.forgetAfterMs ?? 600_000);
    for (const [label, at] of this.#missing) if (at < before) this.#missing.delete(label);
  }

  #count(step: RecoveryStep, outcome: Outcome): void {
    const key = `${step} ${outcome}`;
    this.#steps.set(key, (this.#steps.get(key) ?? 0) + 1);
  }
}
