import type { AuditProblem, LogPosition } from './audit-problem.js';

/** A head noted earlier (by an auditor, the anchor or the stream copy) that the log must still hold. */
export interface ExpectedHead {
  readonly seq: number;
  readonly hash: string;
  /** With an anchor: the boot of the run that wrote record `seq`. */
  readonly boot?: number | undefined;
  /** Named in messages: "the anchor", "the expected head". */
  readonly source: string;
}

/** Record `seq` as the verifier found it: its line hash and the boot of its run. */
export interface FoundRecord extends LogPosition {
  readonly hash: string;
  readonly boot: number | undefined;
}

/**
 * Undefined when the log still holds the expected record; otherwise `cut-back` (the log ends
 * before it, or lacks it), `replaced` (another record has its seq) or `bad-anchor` (another run).
 */
export function expectedHeadProblem(
  e: ExpectedHead,
  found: FoundRecord | undefined,
  log: { readonly lastSeq: number; readonly end: LogPosition; readonly losses: number },
): AuditProblem | undefined {
  const lost = log.losses > 0 ? ` (the log holds ${log.losses} acknowledged loss record(s))` : '';
  if (found === undefined) {
    const why =
      log.lastSeq < e.seq
        ? `the log ends at seq ${log.lastSeq}: records were cut off its end`
        : `record ${e.seq} is not in the log (pruned?)`;
    return {
      kind: 'cut-back',
      ...log.end,
      message: `${e.source} says the log reached seq ${e.seq}, but ${why}${lost}`,
    };
  }
  const at = { file: found.file, line: found.line };
  if (found.hash !== e.hash) {
    return {
      kind: 'replaced',
      ...at,
      message: `record ${e.seq} is not the one ${e.source} names (hash ${found.hash}, expected ${e.hash}): the log was replaced from there${lost}`,
    };
  }
  if (e.boot !== undefined && found.boot !== undefined && found.boot !== e.boot) {
    return {
      kind: 'bad-anchor',
      ...at,
      message: `record ${e.seq} was written by run ${found.boot}, but ${e.source} says run ${e.boot}`,
    };
  }
  return undefined;
}
