export { type AnchorVerdict, checkAgainstAnchor, type FoundLog } from './anchor-check.js';
export {
  ANCHOR_FORMAT,
  type AnchorReading,
  type AuditAnchor,
  type AuditAnchorStore,
  type AuditHead,
  anchorSignatureProblem,
  anchorSigningInput,
  parseAnchorText,
  signAnchor,
} from './audit-anchor.js';
export type { AuditEvent, AuditOperation, AuditOutcome, AuditSink } from './audit-event.js';
export type { AuditProblem, AuditProblemKind, LogPosition } from './audit-problem.js';
export {
  type AnchorProblem,
  type AuditRecord,
  type CheckpointRecord,
  checkpointSigningInput,
  type EventRecord,
  eventLine,
  GENESIS_PREV,
  type LossRecord,
  lineHash,
  lossSigningInput,
  pickEventFields,
  type RecoveryRecord,
  recordLine,
  type SignedRecord,
  type StartRecord,
  signingInput,
  startSigningInput,
  type UnsignedRecord,
} from './audit-record.js';
export type { AuditSigner, AuditVerifyKey } from './audit-signer.js';
export {
  type AuditVerifyReport,
  ChainVerifier,
  type ChainVerifyOptions,
  splitLines,
} from './chain-verifier.js';
export { type ExpectedHead, expectedHeadProblem, type FoundRecord } from './expected-head.js';
export { formatRecord } from './record-format.js';
export {
  batchRecords,
  type CheckpointPolicy,
  type OpeningRecords,
  type OpeningState,
  openingRecords,
  signedRecordLine,
} from './record-lines.js';
export { type LossSummary, RunTracker, signatureProblem } from './signed-records.js';
