import { type AnchorReading, type AuditAnchor, anchorSignatureProblem } from './audit-anchor.js';
import type { AnchorProblem } from './audit-record.js';
import type { AuditVerifyKey } from './audit-signer.js';

/** What the writer found in the log folder at open. */
export interface FoundLog {
  /** seq and line hash of the last complete record (0 and the genesis value when there is none). */
  readonly lastSeq: number;
  readonly lastHash: string;
  /** Line hash of the record whose seq is the anchor's, when the scan found one. */
  readonly hashAtAnchor?: string | undefined;
  /**
   * The newest start record the scan saw. With an anchor the scan stops at the file holding the
   * anchor's record, so an older start may exist; without one it reads back until it finds one.
   */
  readonly lastStart?: { readonly seq: number; readonly boot: number } | undefined;
}

/** The anchor's values as stored (unverified when the signature is the problem). */
type AnchorValues = Pick<AuditAnchor, 'seq' | 'hash' | 'boot'>;

export type AnchorVerdict =
  | {
      readonly ok: true;
      readonly nextBoot: number;
      /** No anchor and no start record: a log written before anchors existed, taken over as found. */
      readonly adopted: boolean;
    }
  | {
      readonly ok: false;
      readonly problem: AnchorProblem;
      /** One sentence for the operator: what the anchor says and what was found. */
      readonly message: string;
      readonly nextBoot: number;
      readonly anchor?: AnchorValues | undefined;
    };

/**
 * Compares the log as found with its anchor (see docs/audit.md "The anchor"). A log behind its
 * anchor, different at the anchor's record, of an earlier run, or without the anchor it must
 * have, is not ok; `nextBoot` is the boot the next start record takes either way.
 */
export function checkAgainstAnchor(
  reading: AnchorReading,
  keys: readonly AuditVerifyKey[],
  found: FoundLog,
): AnchorVerdict {
  const startBoot = found.lastStart?.boot ?? 0;
  if (reading.kind === 'invalid') {
    return fail('anchor-invalid', `the anchor is not valid (${reading.reason})`, startBoot + 1);
  }
  if (reading.kind === 'none') {
    if (found.lastSeq === 0) return { ok: true, nextBoot: 1, adopted: false };
    if (found.lastStart === undefined) return { ok: true, nextBoot: 1, adopted: true };
    return fail(
      'anchor-missing',
      `the anchor is missing, but the log has start records (the last one, seq ${found.lastStart.seq}, is boot ${found.lastStart.boot}): it was removed`,
      startBoot + 1,
    );
  }
  const a = reading.anchor;
  const values: AnchorValues = { seq: a.seq, hash: a.hash, boot: a.boot };
  const nextBoot = Math.max(a.boot, startBoot) + 1;
  const bad = (problem: AnchorProblem, message: string) => fail(problem, message, nextBoot, values);
  const sigProblem = anchorSignatureProblem(a, keys);
  if (sigProblem !== undefined) return bad('anchor-invalid', `the anchor is ${sigProblem}`);
  const says = `the anchor says the log reached seq ${a.seq} (boot ${a.boot})`;
  if (found.lastSeq === 0) return bad('erased', `${says}, but the log has no records: it was erased`);
  if (found.lastSeq < a.seq) {
    return bad(
      'cut-back',
      `${says}, but the log ends at seq ${found.lastSeq}: records were cut off its end, or it was put back from an older copy`,
    );
  }
  if (found.hashAtAnchor === undefined)
    return bad(
      'replaced',
      `${says}, but record ${a.seq} is not in the log: records were removed or replaced`,
    );
  if (found.hashAtAnchor !== a.hash)
    return bad(
      'replaced',
      `${says}, but record ${a.seq} differs from the one anchored: the log was replaced`,
    );
  const s = found.lastStart;
  if (s !== undefined && (s.seq > a.seq ? s.boot <= a.boot : s.boot !== a.boot)) {
    return bad(
      'boot-mismatch',
      `${says}, but the start record at seq ${s.seq} is boot ${s.boot}: the log is from another run`,
    );
  }
  return { ok: true, nextBoot, adopted: false };
}

function fail(
  problem: AnchorProblem,
  message: string,
  nextBoot: number,
  anchor?: AnchorValues,
): AnchorVerdict {
  return { ok: false, problem, message, nextBoot, anchor };
}
