/** What `audit verify` can find wrong with a log (docs/audit.md "Verify"). */
export type AuditProblemKind =
  | 'edited'
  | 'removed'
  | 'reordered'
  | 'torn'
  | 'truncated'
  | 'malformed'
  | 'bad-checkpoint'
  | 'bad-start'
  | 'bad-loss'
  | 'bad-anchor'
  | 'empty'
  | 'cut-back'
  | 'replaced';

/** Where in the log: lines are 1-based within `file`. */
export interface LogPosition {
  readonly file: string;
  readonly line: number;
}

/** The first thing wrong with an audit log, and where. */
export interface AuditProblem extends LogPosition {
  readonly kind: AuditProblemKind;
  readonly message: string;
}
