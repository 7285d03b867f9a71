export type { AuditEvent, AuditOperation, AuditOutcome, AuditSink } from './audit-event.js';
export {
  type AuditRecord,
  type CheckpointRecord,
  checkpointSigningInput,
  type EventRecord,
  eventLine,
  GENESIS_PREV,
  lineHash,
  pickEventFields,
  type RecoveryRecord,
  recordLine,
} from './audit-record.js';
export type { AuditSigner, AuditVerifyKey } from './audit-signer.js';
export {
  type AuditProblem,
  type AuditProblemKind,
  type AuditVerifyReport,
  ChainVerifier,
  type ChainVerifyOptions,
  splitLines,
} from './chain-verifier.js';
export { FanOutAuditSink } from './fan-out-sink.js';
export { formatRecord } from './record-format.js';
