import type { Writable } from 'node:stream';
import { type Clock, systemClock } from '@keygate/shared';
import { configError } from '@keygate/shared/config';
import { isKeygateError, KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import { FileAuditAnchorStore } from './adapters/audit/anchor-file.js';
import { type AuditDirLock, lockAuditDir } from './adapters/audit/dir-lock.js';
import { FileAuditSink, type FileAuditSinkOptions } from './adapters/audit/file-sink.js';
import { KeyFileAuditSigner } from './adapters/audit/key-file-signer.js';
import { LogAuditSink } from './adapters/audit/log-audit-sink.js';
import { inspectAuditLog } from './adapters/audit/log-opener.js';
import { AuditStreamCopy } from './adapters/audit/stream-copy.js';
import type { PgDatabase } from './adapters/postgres/pg-database.js';
import type { GatewayConfig } from './config.js';
import type { AnchorVerdict } from './core/audit/anchor-check.js';
import type { AuditSink } from './core/audit/audit-event.js';
import type { LossRecord } from './core/audit/audit-record.js';
import { buildPostgresAuditSink } from './pg-audit-runtime.js';

type AuditConfig = Extract<NonNullable<GatewayConfig['audit']>, { target: 'file' }>;

/**
 * The audit sink of the config: the hash-chained file log checked against its anchor (plus a
 * copy of every record line on `stream` when `audit.stdout`), or, without an `audit` section,
 * the log-line sink (not durable; a warning says so). Throws AUDIT_ANCHOR_MISMATCH when
 * the log is behind or differs from its anchor: the gateway then refuses to start.
 */
export async function buildAuditSink(
  config: GatewayConfig,
  configFile: string,
  logger: Logger,
  stream: Writable = process.stdout,
  clock: Clock = systemClock,
  database?: PgDatabase,
): Promise<AuditSink> {
  const a = config.audit;
  if (a === undefined) {
    logger.warn(
      'no audit section in the config: audit records go to the log only (not durable, not tamper-evident)',
    );
    return new LogAuditSink(logger.child({ component: 'audit' }));
  }
  if (a.target === 'postgres') return buildPostgresAuditSink(a, configFile, logger, clock, database);
  const log = logger.child({ component: 'audit' });
  const signer = await KeyFileAuditSigner.fromFile(a.signingKeyFile);
  const lock = await takeAuditDir(a, configFile);
  if (!lock.held) log.warn({ dir: a.dir, reason: lock.reason }, 'audit folder not lockable');
  const copy = a.stdout
    ? new AuditStreamCopy(stream, {
        onError: (err) => log.warn({ err: err.toLog() }, 'audit stream copy failed'),
      })
    : undefined;
  let file: FileAuditSink;
  try {
    file = await FileAuditSink.open({
      ...sinkOptions(a, signer, clock),
      onError: (err) =>
        log.error(
          { err: err.toLog(), dir: a.dir },
          err.detail?.anchor === undefined ? 'audit log write failed' : 'audit anchor write failed',
        ),
      onWarning: (msg, detail) => log.warn(detail, msg),
      ...(copy === undefined ? {} : { onWritten: (text: string) => copy.write(text) }),
    });
  } catch (err) {
    if (lock.held) await lock.release();
    if (isKeygateError(err) && err.code === 'AUDIT_ANCHOR_MISMATCH') {
      log.error({ err: err.toLog() }, 'audit log does not match its anchor: refusing to start');
    }
    throw err;
  }
  const stats = file.stats;
  if (stats.available)
    log.info(
      { dir: a.dir, lastSeq: stats.lastSeq, boot: stats.boot, anchor: a.anchorFile, keyId: signer.keyId },
      'audit log open',
    );
  else
    log.error(
      { dir: a.dir },
      'audit log unavailable: key operations answer 503 AUDIT_UNAVAILABLE until it opens',
    );
  return {
    assertAvailable: () => file.assertAvailable(),
    append: (event) => file.append(event),
    async close() {
      try {
        await file.close();
      } finally {
        if (lock.held) await lock.release();
      }
    },
  };
}

/** What `audit acknowledge-loss` did. */
export type AcknowledgeResult =
  | { readonly acknowledged: false; readonly verdict: AnchorVerdict; readonly lastSeq: number }
  | {
      readonly acknowledged: true;
      readonly loss: LossRecord;
      readonly boot: number;
      readonly lastSeq: number;
    };

/**
 * `keygate-gateway audit acknowledge-loss`: with the gateway stopped (it takes the folder's
 * writer lock), writes a signed loss record for a log that does not match its anchor, a start
 * record and a close checkpoint, then rewrites the anchor. Does nothing when the log matches.
 */
export async function acknowledgeAuditLoss(
  config: GatewayConfig,
  configFile: string,
  reason: string,
  clock: Clock = systemClock,
): Promise<AcknowledgeResult> {
  const a = config.audit;
  if (a === undefined) throw configError(configFile, [{ path: 'audit', expected: 'an audit section' }]);
  if (a.target !== 'file') {
    // The PostgreSQL chain has no anchor to disagree with: nothing to acknowledge.
    throw configError(configFile, [
      { path: 'audit.target', expected: 'file (acknowledge-loss is for the file log)' },
    ]);
  }
  const signer = await KeyFileAuditSigner.fromFile(a.signingKeyFile);
  const lock = await takeAuditDir(a, configFile);
  if (!lock.held) {
    throw new KeygateError('AUDIT_UNAVAILABLE', { detail: { dir: a.dir, reason: lock.reason } });
  }
  try {
    const anchors = new FileAuditAnchorStore(a.anchorFile);
    const found = await inspectAuditLog(a.dir, anchors, [signer]);
    if (found.verdict.ok) return { acknowledged: false, verdict: found.verdict, lastSeq: found.scan.lastSeq };
    let failure: KeygateError | undefined;
    const sink = await FileAuditSink.open({
      ...sinkOptions(a, signer, clock),
      acknowledgeLoss: { reason },
      onError: (err) => {
        failure ??= err;
      },
    });
    const loss = sink.acknowledged;
    await sink.close();
    // Without the close checkpoint and the new anchor, `serve` would refuse again: say so.
    if (loss === undefined || failure !== undefined) {
      throw failure ?? new KeygateError('AUDIT_UNAVAILABLE', { detail: { dir: a.dir } });
    }
    return { acknowledged: true, loss, boot: sink.stats.boot, lastSeq: sink.stats.lastSeq };
  } finally {
    await lock.release();
  }
}

function sinkOptions(a: AuditConfig, signer: KeyFileAuditSigner, clock: Clock): FileAuditSinkOptions {
  return {
    dir: a.dir,
    signer,
    clock,
    anchors: new FileAuditAnchorStore(a.anchorFile),
    anchorIntervalMs: a.anchorInterval,
    checkpointEvery: a.checkpointEvery,
    checkpointIntervalMs: a.checkpointInterval,
    maxFileBytes: a.maxFileBytes,
    maxFileAgeMs: a.maxFileAge,
  };
}

/** One writer per folder: a second gateway (or acknowledge-loss beside a running one) would fork the chain. */
async function takeAuditDir(
  a: AuditConfig,
  configFile: string,
): Promise<Exclude<AuditDirLock, { readonly busyPid: number }>> {
  const lock = await lockAuditDir(a.dir);
  if (!lock.held && 'busyPid' in lock) {
    throw configError(configFile, [
      {
        path: 'audit.dir',
        expected: `a folder no other running gateway writes (${a.dir} is held by pid ${lock.busyPid})`,
      },
    ]);
  }
  return lock;
}

/** Where audit records go, for the start log line: the folder, `postgres`, or undefined. */
export function auditTarget(config: GatewayConfig): string | undefined {
  return config.audit?.target === 'postgres' ? 'postgres' : config.audit?.dir;
}
