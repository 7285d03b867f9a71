export { FileAuditAnchorStore } from './anchor-file.js';
export { AnchorWriter } from './anchor-writer.js';
export { type AuditFile, auditFileName, listAuditFiles, parseAuditFileName } from './audit-files.js';
export { FileAuditSink, type FileAuditSinkOptions, type FileAuditSinkStats } from './file-sink.js';
export { auditVerifyKey, createAuditKeyFile, KeyFileAuditSigner } from './key-file-signer.js';
export { inspectAuditLog, openAuditLog } from './log-opener.js';
export { AuditStreamCopy } from './stream-copy.js';
export { tailAudit } from './tail.js';
export { verifyAuditCopy, verifyAuditDir } from './verify-dir.js';
