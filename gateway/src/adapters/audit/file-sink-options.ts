import type { Clock } from '@keygate/shared';
import type { KeygateError } from '@keygate/shared/errors';
import type { AuditAnchorStore } from '../../core/audit/audit-anchor.js';
import type { AuditSigner } from '../../core/audit/audit-signer.js';

export interface FileAuditSinkOptions {
  readonly dir: string;
  readonly signer: AuditSigner;
  readonly clock: Clock;
  /** Where the anchor is kept (docs/audit.md "The anchor"). */
  readonly anchors: AuditAnchorStore;
  /** Background anchor writes at most this often (default 1 s). */
  readonly anchorIntervalMs?: number;
  /** A signed checkpoint after this many events (default 1000). */
  readonly checkpointEvery?: number;
  /** …or after this long with unsigned events (default 60 s). */
  readonly checkpointIntervalMs?: number;
  /** Rotate before a write once the file holds this many bytes (default 64 MiB). */
  readonly maxFileBytes?: number;
  /** Rotate before a write once the file is this old (default 24 h). */
  readonly maxFileAgeMs?: number;
  /** Most events in one write (default 1024). */
  readonly maxBatch?: number;
  /** While unavailable, try to reopen this often (default 5 s). */
  readonly probeIntervalMs?: number;
  /** Told about every write, sync, open or anchor failure (for logs; the cause, never a record). */
  readonly onError?: (err: KeygateError) => void;
  /** Told when the log is taken over without an anchor (a log written before anchors existed). */
  readonly onWarning?: (message: string, detail: Readonly<Record<string, string | number>>) => void;
  /** Given the exact text of every durable write (whole lines), after it returned: the stream copy. */
  readonly onWritten?: (text: string) => void;
  /** `audit acknowledge-loss`: open a log that does not match its anchor and record the loss. */
  readonly acknowledgeLoss?: { readonly reason: string };
  /** Test hook: runs before every durable write; throw to simulate a failing disk. */
  readonly beforeSync?: () => void | Promise<void>;
}

export type OptionalSinkOption = 'onError' | 'onWarning' | 'onWritten' | 'acknowledgeLoss' | 'beforeSync';

/** The defaults of FileAuditSinkOptions. */
export const SINK_DEFAULTS = {
  anchorIntervalMs: 1000,
  checkpointEvery: 1000,
  checkpointIntervalMs: 60_000,
  maxFileBytes: 64 * 1024 * 1024,
  maxFileAgeMs: 24 * 3_600_000,
  maxBatch: 1024,
  probeIntervalMs: 5_000,
} as const;

/** Counters for metrics and tests. */
export interface FileAuditSinkStats {
  /** Durable writes (each one O_DSYNC write of a batch). */
  readonly syncs: number;
  readonly events: number;
  readonly lastSeq: number;
  /** This run's boot (0 until the log was opened). */
  readonly boot: number;
  readonly anchorWrites: number;
  readonly available: boolean;
}
