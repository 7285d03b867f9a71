import { type ErrorCode, isKeygateError, KeygateError } from '@keygate/shared/errors';
import { type HealthProblem, healthProblemOf, keyStateText } from './health.js';

/**
 * What the gateway last proved about the root key: `active` (a wrap or unwrap succeeded),
 * `inactive` (it answered KEY_ACTION_INVALID_STATE_ERR: disabled, or KEY_NOT_FOUND_ERR), or
 * `destroyed` (KEY_DELETED_ERR). Only those answers change it, never an outage or a timeout.
 */
export type KeyState = 'active' | 'inactive' | 'destroyed';

/** What Status answers: always from memory, never waiting on the gateway. */
export interface CoreStatus {
  readonly healthz: string;
  /** Empty only before the first successful wrap (healthz is then not "ok"). */
  readonly keyId: string;
  /**
   * Set while the gateway is unreachable but this shim still serves every call kube-apiserver
   * needs from its current DEK and cache; Status then stays "ok" (see KeyStatus.status()).
   */
  readonly degraded?: string;
}

const STATE_OF: Partial<Record<ErrorCode, KeyState>> = {
  KEY_ACTION_INVALID_STATE_ERR: 'inactive',
  KEY_NOT_FOUND_ERR: 'inactive',
  KEY_DELETED_ERR: 'destroyed',
};

/** The key state a gateway failure proves, or undefined (transient faults, refusals, bad input). */
export function keyStateProvedBy(err: unknown): KeyState | undefined {
  return isKeygateError(err) ? STATE_OF[err.code] : undefined;
}

export interface KeyStatusEvents {
  keyIdChanged?(from: string | undefined, to: string): void;
  healthChanged?(healthz: string): void;
}

/**
 * The shim's view of the root key and the gateway, for Status and for refusing work fast: the
 * key_id (never going back to a version it left), the key state and the last gateway problem.
 *
 * Answers can overtake each other (a wrap sent before a disable can succeed after the refusal of
 * a later one), so every gateway call takes a ticket (`epoch`) when it starts, and its answer
 * changes the key state only if no other answer changed it since.
 */
export class KeyStatus {
  /**
   * Set while Encrypt and Decrypt must fail without calling the gateway: NOT_READY once closed,
   * otherwise the key-state code the gateway answered. Undefined in normal operation; the hot
   * paths read only this field.
   */
  refusal: ErrorCode | undefined;
  #state: KeyState = 'active';
  #stateCode: ErrorCode | undefined;
  #epoch = 0;
  #keyId: string | undefined;
  readonly #retired = new Set<string>();
  #problem: HealthProblem | undefined = { text: 'gateway not reached yet', transient: false };
  #closed = false;
  /** The last status() answer while it depends only on the fields above; cleared when they change. */
  #status: CoreStatus | undefined;
  #lastHealthz: string | undefined;
  readonly #canServeLocally: () => boolean;
  readonly #events: KeyStatusEvents;

  /** `canServeLocally`: true while the current DEK can still encrypt without the gateway. */
  constructor(canServeLocally: () => boolean, events: KeyStatusEvents = {}) {
    this.#canServeLocally = canServeLocally;
    this.#events = events;
  }

  get keyId(): string | undefined {
    return this.#keyId;
  }

  get state(): KeyState {
    return this.#state;
  }

  /** The ticket a gateway call takes when it starts (see the class comment). */
  get epoch(): number {
    return this.#epoch;
  }

  /** The error Encrypt and Decrypt fail with while `refusal` is set. */
  refusalError(): KeygateError {
    const code = this.refusal ?? 'NOT_READY';
    return new KeygateError(code, {
      detail: { reason: this.#closed ? 'closed' : `root key ${this.#state} (an earlier gateway answer)` },
    });
  }

  /** True once `keyId` was left for a newer version: a lagging replica must not bring it back. */
  isRetired(keyId: string): boolean {
    return this.#retired.has(keyId);
  }

  /** Takes `keyId` as the current one unless it is current already or was left before. */
  adoptKeyId(keyId: string): void {
    if (keyId === this.#keyId || this.#retired.has(keyId)) return;
    const from = this.#keyId;
    if (from !== undefined) this.#retired.add(from);
    this.#keyId = keyId;
    this.#changed();
    this.#events.keyIdChanged?.(from, keyId);
  }

  /**
   * A gateway call that started with ticket `epoch` succeeded: the gateway is healthy, and the key
   * is active again unless another answer changed the state since the call started.
   */
  noteSuccess(epoch: number): void {
    if (this.#state !== 'active' && epoch === this.#epoch) this.#setState('active', undefined);
    this.#setProblem(undefined);
  }

  /**
   * A gateway call that started with ticket `epoch` failed with `err`. Returns true when the
   * failure proved a new key state (inactive or destroyed): the caller then drops every DEK.
   */
  noteFailure(err: unknown, epoch: number): boolean {
    const problem = healthProblemOf(err);
    let proved = false;
    const state = keyStateProvedBy(err);
    if (state !== undefined && epoch === this.#epoch && isKeygateError(err)) {
      proved = state !== this.#state || err.code !== this.#stateCode;
      if (proved) this.#setState(state, err.code);
    }
    if (problem !== undefined) this.#setProblem(problem);
    return proved;
  }

  /** Marks the shim closed: every later call fails with NOT_READY. */
  close(): void {
    this.#closed = true;
    this.refusal = 'NOT_READY';
    this.#changed();
  }

  /**
   * Cached health and key_id, for Status. The same object comes back for as long as the state it
   * reflects is unchanged (callers may cache what they build from it by identity).
   */
  status(): CoreStatus {
    const cached = this.#status;
    if (cached !== undefined) return cached;
    const s = this.#computeStatus();
    // The degraded branch depends on the clock (the current DEK's limits): never cached.
    if (
      !(this.#problem?.transient && this.#keyId !== undefined && this.#state === 'active' && !this.#closed)
    ) {
      this.#status = s;
    }
    return s;
  }

  #computeStatus(): CoreStatus {
    const keyId = this.#keyId ?? '';
    if (this.#closed) return { healthz: 'shutting down', keyId };
    // A proven key state comes first: it is why calls fail, whatever the gateway does meanwhile.
    if (this.#state !== 'active') return { healthz: keyStateText(this.#stateCode), keyId };
    if (this.#keyId === undefined)
      return { healthz: `no key_id yet: ${this.#problem?.text ?? 'starting'}`, keyId };
    if (this.#problem === undefined) return { healthz: 'ok', keyId };
    // An unreachable gateway does not stop this shim from serving kube-apiserver while the current
    // DEK is usable: Encrypt seals with it and Decrypt of cached DEKs needs no gateway. Reporting
    // unhealthy then would make every apiserver sharing this gateway unready (out of its load
    // balancer) for an outage keygate absorbs. Refusals and key states are never masked, and
    // the deep /healthz check and the metrics still show the gateway problem.
    if (this.#problem.transient && this.#canServeLocally()) {
      return { healthz: 'ok', keyId, degraded: this.#problem.text };
    }
    return { healthz: this.#problem.text, keyId };
  }

  #setState(state: KeyState, code: ErrorCode | undefined): void {
    this.#state = state;
    this.#stateCode = code;
    this.#epoch++;
    if (!this.#closed) this.refusal = code;
    this.#changed();
  }

  #setProblem(problem: HealthProblem | undefined): void {
    // The text decides the kind (healthProblemOf), so equal texts are equal problems.
    if (problem?.text === this.#problem?.text) return;
    this.#problem = problem;
    this.#changed();
  }

  /** Drops the cached status and tells the log when the healthz text changed. */
  #changed(): void {
    this.#status = undefined;
    const st = this.status();
    const text = st.degraded ? `ok, degraded: ${st.degraded}` : st.healthz;
    if (text === this.#lastHealthz) return;
    this.#lastHealthz = text;
    this.#events.healthChanged?.(text);
  }
}
