export { type AuditFile, auditFileName, listAuditFiles, parseAuditFileName } from './audit-files.js';
export { FileAuditSink, type FileAuditSinkOptions, type FileAuditSinkStats } from './file-sink.js';
export { auditVerifyKey, createAuditKeyFile, KeyFileAuditSigner } from './key-file-signer.js';
export { StreamAuditSink } from './stream-sink.js';
export { tailAudit } from './tail.js';
export { verifyAuditDir } from './verify-dir.js';
