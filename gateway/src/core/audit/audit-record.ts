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

export type AuditRecord = EventRecord | CheckpointRecord | RecoveryRecord;

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
  'operation',
  'outcome',
  'errorCode',
  'latencyMs',
  'wrappedDekHash',
  'deadline',
  'count',
  'since',
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

/** The JSON line (without newline) of a checkpoint or recovery record. */
export function recordLine(record: CheckpointRecord | RecoveryRecord): string {
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
