import { sha256 } from '@keygate/shared/crypto';
import type { AuditEvent } from './audit-event.js';

/** `prev` of the very first record: 64 zeros. */
export const GENESIS_PREV = '0'.repeat(64);

/** Fields every record starts with, in this order. */
interface Chained {
  /** 1, 2, 3… across files and restarts. */
  readonly seq: number;
  /** Hex SHA-256 of the previous record's line (its UTF-8 bytes, without the newline). */
  readonly prev: string;
}

/** One audited operation. */
export type EventRecord = Chained & { readonly type: 'event' } & AuditEvent;

/** A signed statement that the chain up to and including this record is as written. */
export interface CheckpointRecord extends Chained {
  readonly type: 'checkpoint';
  readonly time: string;
  readonly reason: 'interval' | 'rotate' | 'close';
  /** Event records since the previous checkpoint. */
  readonly count: number;
  readonly keyId: string;
  /** base64url signature over checkpointSigningInput(). */
  readonly sig: string;
}

/** Written on open when the previous run did not end with a close checkpoint (a crash or a failed write). */
export interface RecoveryRecord extends Chained {
  readonly type: 'recovery';
  readonly time: string;
  readonly reason: 'unclean-shutdown' | 'write-failure';
  /** Bytes of a torn last line that were cut away (0 when none). */
  readonly tornBytes: number;
  /** Hex SHA-256 of those bytes, for forensics (records never hold secrets). */
  readonly tornSha256?: string | undefined;
  readonly file: string;
}

/**
 * Written on every open of the log by a gateway process (after a recovery or loss record when
 * one is due): a signed statement that run number `boot` of this log's writer started here.
 */
export interface StartRecord extends Chained {
  readonly type: 'start';
  readonly time: string;
  /** 1 for a new log, then the previous run's boot + 1. */
  readonly boot: number;
  /**
   * Which replica started (PostgreSQL audit chain: several gateways write one chain; their start
   * records count boots 1, 2, 3… together). Absent in a file log, which has one writer.
   */
  readonly replica?: string | undefined;
  readonly keyId: string;
  /** base64url signature over startSigningInput(). */
  readonly sig: string;
}

/** Why the log did not match its anchor (see core/audit/anchor-check.ts). */
export type AnchorProblem =
  | 'erased'
  | 'cut-back'
  | 'replaced'
  | 'boot-mismatch'
  | 'anchor-missing'
  | 'anchor-invalid';

/**
 * Written by `keygate-gateway audit acknowledge-loss`: a signed statement that the log was found
 * behind (or different from) its anchor and that an operator accepted it. The chain goes on from
 * the last record actually present, so seq numbers after it follow on from there.
 */
export interface LossRecord extends Chained {
  readonly type: 'loss';
  readonly time: string;
  readonly problem: AnchorProblem;
  /** What the anchor said (absent when there was no readable anchor). */
  readonly anchorSeq?: number | undefined;
  readonly anchorHash?: string | undefined;
  readonly anchorBoot?: number | undefined;
  /** The last record found in the log before this one (0 and the genesis value when none). */
  readonly foundSeq: number;
  readonly foundHash: string;
  /** The operator's words (`--reason`). */
  readonly reason: string;
  readonly keyId: string;
  /** base64url signature over lossSigningInput(). */
  readonly sig: string;
}

/** Records the gateway signs. */
export type SignedRecord = CheckpointRecord | StartRecord | LossRecord;

/** A signed record before its signature (distributes over the union). */
export type UnsignedRecord<T extends SignedRecord = SignedRecord> = T extends unknown
  ? Omit<T, 'sig'>
  : never;

export type AuditRecord = EventRecord | CheckpointRecord | RecoveryRecord | StartRecord | LossRecord;

/** AuditEvent fields copied into a record, in this order. Anything else a caller passes is dropped. */
const EVENT_FIELDS = [
  'time',
  'requestId',
  'correlationId',
  'certIdentity',
  'subject',
  'instance',
  'keyId',
  'keyVersion',
  'target',
  'operation',
  'outcome',
  'errorCode',
  'latencyMs',
  'wrappedDekHash',
  'deadline',
  'count',
  'since',
  'fromKeyVersion',
  'reason',
  'reserved',
] as const satisfies readonly (keyof AuditEvent)[];

/**
 * The event's known fields only (an allow-list, so a stray `plaintext` or `apikey` property on
 * the object can never reach the log), undefined ones left out.
 */
export function pickEventFields(event: AuditEvent): AuditEvent {
  const out: Record<string, unknown> = {};
  for (const f of EVENT_FIELDS) {
    const v = event[f];
    if (v !== undefined) out[f] = v;
  }
  return out as unknown as AuditEvent;
}

/** The JSON line (without newline) of an event record. */
export function eventLine(seq: number, prev: string, event: AuditEvent): string {
  return JSON.stringify({ seq, prev, type: 'event', ...pickEventFields(event) });
}

/** The JSON line (without newline) of any record but an event. */
export function recordLine(record: Exclude<AuditRecord, EventRecord>): string {
  return JSON.stringify(record);
}

/** Hex SHA-256 of a line's bytes: the next record's `prev`. */
export function lineHash(line: string | Uint8Array): string {
  return sha256(line).toString('hex');
}

/** The bytes a checkpoint signature covers: seq and prev pin everything before it. */
export function checkpointSigningInput(c: Omit<CheckpointRecord, 'sig'>): Buffer {
  return Buffer.from(
    `keygate-audit-checkpoint/v1\n${c.seq}\n${c.prev}\n${c.time}\n${c.reason}\n${c.count}\n${c.keyId}`,
    'utf8',
  );
}

/** The bytes a start record's signature covers (the replica, as JSON, only when the record names one). */
export function startSigningInput(s: Omit<StartRecord, 'sig'>): Buffer {
  const replica = s.replica === undefined ? '' : `\n${JSON.stringify(s.replica)}`;
  return Buffer.from(
    `keygate-audit-start/v1\n${s.seq}\n${s.prev}\n${s.time}\n${s.boot}\n${s.keyId}${replica}`,
    'utf8',
  );
}

/** The bytes a loss record's signature covers (absent anchor fields as `-`, the reason as JSON). */
export function lossSigningInput(l: Omit<LossRecord, 'sig'>): Buffer {
  const opt = (v: string | number | undefined) => (v === undefined ? '-' : String(v));
  return Buffer.from(
    [
      'keygate-audit-loss/v1',
      l.seq,
      l.prev,
      l.time,
      l.problem,
      opt(l.anchorSeq),
      opt(l.anchorHash),
      opt(l.anchorBoot),
      l.foundSeq,
      l.foundHash,
      JSON.stringify(l.reason),
      l.keyId,
    ].join('\n'),
    'utf8',
  );
}

/** The signing input of any signed record, chosen by its type. */
export function signingInput(r: UnsignedRecord): Buffer {
  if (r.type === 'checkpoint') return checkpointSigningInput(r);
  if (r.type === 'start') return startSigningInput(r);
  return lossSigningInput(r);
}
