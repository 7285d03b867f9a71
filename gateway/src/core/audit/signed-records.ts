import type { AuditProblem, LogPosition } from './audit-problem.js';
import type { AnchorProblem, SignedRecord, UnsignedRecord } from './audit-record.js';
import { signingInput } from './audit-record.js';
import type { AuditVerifyKey } from './audit-signer.js';

/** An acknowledged loss found in the log (`audit acknowledge-loss`). */
export interface LossSummary {
  readonly seq: number;
  readonly time: string;
  readonly problem: AnchorProblem;
  readonly anchorSeq?: number | undefined;
  readonly anchorBoot?: number | undefined;
  readonly foundSeq: number;
  readonly reason: string;
}

const BAD_SIGNATURE = { checkpoint: 'bad-checkpoint', start: 'bad-start', loss: 'bad-loss' } as const;

/** Undefined when a checkpoint, start or loss record is signed by one of `keys`; otherwise the problem. */
export function signatureProblem(
  rec: SignedRecord,
  keys: ReadonlyMap<string, AuditVerifyKey>,
  at: LogPosition,
): AuditProblem | undefined {
  const kind = BAD_SIGNATURE[rec.type];
  const key = keys.get(rec.keyId);
  if (key === undefined) {
    return {
      kind,
      ...at,
      message: `${rec.type} seq ${rec.seq} is signed by unknown key ${String(rec.keyId)}`,
    };
  }
  const { sig, ...unsigned } = rec;
  let ok = false;
  try {
    ok =
      typeof sig === 'string' &&
      key.verify(signingInput(unsigned as UnsignedRecord), Buffer.from(sig, 'base64url'));
  } catch {
    ok = false;
  }
  return ok ? undefined : { kind, ...at, message: `${rec.type} seq ${rec.seq} has a bad signature` };
}

/**
 * Follows the runs of a log: start records count boots 1, 2, 3… (any first boot in a pruned log);
 * after a loss record the next boot only has to pass both the last one and the anchor's.
 */
export class RunTracker {
  readonly #pruned: boolean;
  #lastBoot: number | undefined;
  #lossBoot: number | undefined;
  #starts = 0;
  readonly #losses: LossSummary[] = [];

  constructor(prunedStart: boolean) {
    this.#pruned = prunedStart;
  }

  /** Takes a start or loss record; a start whose boot is out of order is a `bad-start`. */
  take(rec: SignedRecord, at: LogPosition): AuditProblem | undefined {
    if (rec.type === 'loss') {
      this.#lossBoot = Math.max(this.#lossBoot ?? 0, rec.anchorBoot ?? 0, this.#lastBoot ?? 0);
      const { seq, time, problem, anchorSeq, anchorBoot, foundSeq, reason } = rec;
      this.#losses.push({ seq, time, problem, anchorSeq, anchorBoot, foundSeq, reason });
      return undefined;
    }
    if (rec.type !== 'start') return undefined;
    const last = this.#lastBoot;
    let ok: boolean;
    let wanted: string;
    if (this.#lossBoot !== undefined) {
      ok = rec.boot > this.#lossBoot;
      wanted = `above ${this.#lossBoot} (after a loss)`;
    } else if (last === undefined && this.#pruned) {
      ok = rec.boot >= 1;
      wanted = 'at least 1';
    } else {
      ok = rec.boot === (last ?? 0) + 1;
      wanted = String((last ?? 0) + 1);
    }
    if (!Number.isSafeInteger(rec.boot) || !ok) {
      return {
        kind: 'bad-start',
        ...at,
        message: `start record seq ${rec.seq} has boot ${String(rec.boot)} where ${wanted} was expected: a run is missing or the record was forged`,
      };
    }
    this.#lastBoot = rec.boot;
    this.#lossBoot = undefined;
    this.#starts++;
    return undefined;
  }

  /** boot of the last start record so far (undefined before the first). */
  get lastBoot(): number | undefined {
    return this.#lastBoot;
  }

  get starts(): number {
    return this.#starts;
  }

  get losses(): readonly LossSummary[] {
    return this.#losses;
  }
}
