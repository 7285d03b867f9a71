import { randomBytes } from 'node:crypto';
import { GrpcStatus } from '@keygate/shared/errors';
import { KmsClient } from '@keygate/shim';
import type { AuditLine } from './e2e-helpers.js';

/** gRPC status names by number, for failure tallies. */
const CODE_NAMES = new Map<number, string>(Object.entries(GrpcStatus).map(([k, v]) => [v, k]));

/** The gRPC status name of a failed KMS call ("UNAVAILABLE"), or "ERROR" for anything else. */
export function grpcCodeName(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'number' ? (CODE_NAMES.get(code) ?? `CODE_${code}`) : 'ERROR';
}

/** Failures that say "not now" rather than "never". */
const TRANSIENT = new Set(['UNAVAILABLE', 'DEADLINE_EXCEEDED']);

/** One KMS call of a load run. */
export interface CallOutcome {
  /** ms since the epoch when it was answered. */
  readonly at: number;
  readonly op: 'encrypt' | 'decrypt';
  /** Undefined when it succeeded. */
  readonly failure?: string | undefined;
}

/** A plaintext and what the shim made of it. */
export interface Sealed {
  readonly pt: Buffer;
  readonly ct: Buffer;
  readonly keyId: string;
}

export interface KmsLoadOptions {
  readonly socket: string;
  /** Callers in parallel, each looping Encrypt then Decrypt of what it got back. */
  readonly concurrency: number;
  /** Also decrypt, now and then, a ciphertext made earlier in the run (its DEK may be cached or not). */
  readonly decryptOld?: boolean;
  /** Pause of each caller between two Encrypt+Decrypt pairs (default 0: as fast as answered). */
  readonly paceMs?: number;
}

/**
 * Closed-loop KMS v2 load on a shim's socket, as kube-apiserver makes it: every caller encrypts a
 * random plaintext and decrypts the answer. Records every call's outcome and keeps every ciphertext
 * it was given, so a fault test can count failures by code, find the recovery time, and check
 * later that every ciphertext still decrypts to its plaintext.
 */
export class KmsLoad {
  readonly outcomes: CallOutcome[] = [];
  readonly made: Sealed[] = [];
  /** Decrypts that returned another plaintext than was encrypted: must stay 0. */
  wrong = 0;
  readonly #client: KmsClient;
  readonly #o: KmsLoadOptions;
  #running = false;
  #loops: Promise<void>[] = [];
  /** `made` up to here was checked by verifyAll already. */
  #verified = 0;
  #verdict = { undecryptable: 0, wrong: 0 };

  constructor(options: KmsLoadOptions) {
    this.#o = options;
    this.#client = new KmsClient(options.socket);
  }

  start(): this {
    this.#running = true;
    this.#loops = Array.from({ length: this.#o.concurrency }, () => this.#loop());
    return this;
  }

  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#loops);
  }

  close(): void {
    this.#client.close();
  }

  /** Failed calls by gRPC code, answered in [from, to). */
  failures(from = 0, to = Number.POSITIVE_INFINITY): Record<string, number> {
    const out: Record<string, number> = {};
    for (const o of this.outcomes) {
      if (o.failure !== undefined && o.at >= from && o.at < to) out[o.failure] = (out[o.failure] ?? 0) + 1;
    }
    return out;
  }

  /** Successful calls answered in [from, to). */
  successes(from = 0, to = Number.POSITIVE_INFINITY): number {
    return this.outcomes.filter((o) => o.failure === undefined && o.at >= from && o.at < to).length;
  }

  /**
   * Milliseconds from `since` until calls succeed again for good: the answer time of the first
   * success after the last failure (0 when nothing failed after `since`).
   */
  recoveryMs(since: number): number {
    const after = this.outcomes.filter((o) => o.at >= since);
    let lastFailure = -1;
    after.forEach((o, i) => {
      if (o.failure !== undefined) lastFailure = i;
    });
    if (lastFailure < 0) return 0;
    const next = after.slice(lastFailure + 1).find((o) => o.failure === undefined);
    return next === undefined ? Number.NaN : Math.max(0, next.at - since);
  }

  /**
   * Waits (up to `timeoutMs`) until the last `streak` calls answered after `sinceMs` all
   * succeeded: the load has recovered from a fault. False when it did not in time.
   */
  async waitRecovered(sinceMs: number, timeoutMs = 30_000, streak = 10): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const tail = this.outcomes.slice(-streak);
      const first = tail[0];
      if (
        tail.length === streak &&
        first !== undefined &&
        first.at >= sinceMs &&
        tail.every((o) => o.failure === undefined)
      )
        return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /**
   * Decrypts every ciphertext of the run again (those made since the last call; the load may go
   * on meanwhile): totals of those that cannot be decrypted, and of those that give a wrong
   * plaintext. A transient failure (UNAVAILABLE, DEADLINE_EXCEEDED: the system is still
   * recovering) is tried again for up to `patienceMs` before the ciphertext counts as lost.
   */
  async verifyAll(patienceMs = 30_000): Promise<{ undecryptable: number; wrong: number }> {
    let todo = this.made.slice(this.#verified);
    this.#verified += todo.length;
    const v = this.#verdict;
    const giveUpAt = Date.now() + patienceMs;
    for (;;) {
      const retry: Sealed[] = [];
      let next = 0;
      const worker = async () => {
        for (let m = todo[next++]; m !== undefined; m = todo[next++]) {
          try {
            if (!(await this.#client.decrypt(m.ct, m.keyId)).plaintext.equals(m.pt)) v.wrong++;
          } catch (err) {
            if (TRANSIENT.has(grpcCodeName(err))) retry.push(m);
            else v.undecryptable++;
          }
        }
      };
      await Promise.all(Array.from({ length: 8 }, worker));
      if (retry.length === 0) break;
      if (Date.now() >= giveUpAt) {
        v.undecryptable += retry.length;
        break;
      }
      todo = retry;
      await new Promise((r) => setTimeout(r, 500));
    }
    return { ...v };
  }

  async #loop(): Promise<void> {
    let n = 0;
    while (this.#running) {
      const pt = randomBytes(32);
      let sealed: Sealed | undefined;
      try {
        const r = await this.#client.encrypt(pt, `load-${n++}`);
        sealed = { pt, ct: r.ciphertext, keyId: r.key_id };
        this.made.push(sealed);
        this.outcomes.push({ at: Date.now(), op: 'encrypt' });
      } catch (err) {
        this.outcomes.push({ at: Date.now(), op: 'encrypt', failure: grpcCodeName(err) });
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      const target =
        this.#o.decryptOld === true && n % 8 === 0 && this.made.length > 1
          ? (this.made[Math.floor(Math.random() * this.made.length)] as Sealed)
          : sealed;
      try {
        const d = await this.#client.decrypt(target.ct, target.keyId);
        if (!d.plaintext.equals(target.pt)) this.wrong++;
        this.outcomes.push({ at: Date.now(), op: 'decrypt' });
      } catch (err) {
        this.outcomes.push({ at: Date.now(), op: 'decrypt', failure: grpcCodeName(err) });
      }
      if (this.#o.paceMs) await new Promise((r) => setTimeout(r, this.#o.paceMs));
    }
  }
}

/** What a fault test prints and checks for each fault. */
export interface FaultReport {
  readonly fault: string;
  readonly injected: string;
  /** Failed calls by code during and after the fault. */
  readonly failures: Readonly<Record<string, number>>;
  /** From the end of the fault until calls succeed for good (ms); NaN when they never did. */
  readonly recoveryMs: number;
  readonly wrongPlaintexts: number;
  readonly undecryptable: number;
  /** Audited key operations answered (recorded as successes) after their caller's deadline. */
  readonly auditedAfterDeadline: number;
  /** Anything else measured, printed as is. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** Prints one `FAULT …` line per fault (CI's log keeps them; docs/benchmarks.md quotes them). */
export function printFault(r: FaultReport): void {
  const rec = Number.isNaN(r.recoveryMs) ? 'never' : `${Math.round(r.recoveryMs)} ms`;
  console.log(
    `FAULT ${r.fault} | injected: ${r.injected} | failures: ${JSON.stringify(r.failures)} | recovery: ${rec} | wrong plaintexts: ${r.wrongPlaintexts} | undecryptable: ${r.undecryptable} | audited after deadline: ${r.auditedAfterDeadline}${r.extra ? ` | ${JSON.stringify(r.extra)}` : ''}`,
  );
}

/** Success records of key operations in an audit folder whose `time` is after their `deadline`. */
export function auditedAfterDeadline(records: readonly AuditLine[]): number {
  return records.filter(
    (r) =>
      r.outcome === 'success' &&
      typeof r.deadline === 'string' &&
      Date.parse(String(r.time)) > Date.parse(r.deadline),
  ).length;
}
