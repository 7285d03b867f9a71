/**
 * `@keygate/gateway/audit-sinks`: the two durable audit sinks and what they need, for measuring
 * them in-process (benchmark A1: group commit of the PostgreSQL chain against the file log).
 * The gateway itself builds them through buildAuditSink (audit-runtime.ts); nothing else should.
 */
export { FileAuditAnchorStore } from './adapters/audit/anchor-file.js';
export { FileAuditSink, type FileAuditSinkStats } from './adapters/audit/file-sink.js';
export { createAuditKeyFile, KeyFileAuditSigner } from './adapters/audit/key-file-signer.js';
export { PgAuditSink, type PgAuditSinkStats } from './adapters/audit/pg-audit-sink.js';
export { PgDatabase } from './adapters/postgres/pg-database.js';
export { poolConfig, postgresSettingsSchema } from './adapters/postgres/pg-settings.js';
export type { AuditEvent, AuditSink } from './core/audit/audit-event.js';
