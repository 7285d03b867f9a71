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
  type AuditProblem,
  type AuditProblemKind,
  type AuditVerifyReport,
  ChainVerifier,
  type ChainVerifyOptions,
  type ExpectedHead,
  type LossSummary,
  splitLines,
} from './chain-verifier.js';
export { formatRecord } from './record-format.js';
