import type { AnchorVerdict } from './anchor-check.js';
import type { AuditEvent } from './audit-event.js';
import {
  type CheckpointRecord,
  eventLine,
  type LossRecord,
  lineHash,
  type RecoveryRecord,
  recordLine,
  signingInput,
  type UnsignedRecord,
} from './audit-record.js';
import type { AuditSigner } from './audit-signer.js';

/** The JSON line of a record signed by `signer`. */
export async function signedRecordLine(unsigned: UnsignedRecord, signer: AuditSigner): Promise<string> {
  const sig = Buffer.from(await signer.sign(signingInput(unsigned))).toString('base64url');
  return recordLine({ ...unsigned, sig } as Parameters<typeof recordLine>[0]);
}

/** The log as the writer found it at open, and what this open must record. */
export interface OpeningState {
  readonly lastSeq: number;
  readonly lastHash: string;
  /** The previous run did not end cleanly, or the last write failed: a recovery record. */
  readonly recovery?: Omit<RecoveryRecord, 'seq' | 'prev' | 'type' | 'time'> | undefined;
  /** Not ok when acknowledging a loss: a loss record with this verdict and the operator's reason. */
  readonly verdict: AnchorVerdict;
  readonly lossReason: string;
  /** The first open of a run: a start record with this boot. */
  readonly startBoot?: number | undefined;
}

/** Lines to write before any event, in order, and where the chain then stands. */
export interface OpeningRecords {
  readonly lines: readonly string[];
  readonly seq: number;
  readonly hash: string;
  readonly loss?: LossRecord | undefined;
}

/**
 * The records an open writes before any event, chained on from the last record found: recovery
 * (after a crash or failed write), loss (when acknowledging one), start (once per run).
 */
export async function openingRecords(
  s: OpeningState,
  signer: AuditSigner,
  time: string,
): Promise<OpeningRecords> {
  let seq = s.lastSeq;
  let hash = s.lastHash;
  const lines: string[] = [];
  const add = (line: string) => {
    lines.push(line);
    hash = lineHash(line);
  };
  const keyId = signer.keyId;
  if (s.recovery !== undefined)
    add(recordLine({ seq: ++seq, prev: hash, type: 'recovery', time, ...s.recovery }));
  let loss: LossRecord | undefined;
  const v = s.verdict;
  if (!v.ok) {
    const line = await signedRecordLine(
      {
        seq: ++seq,
        prev: hash,
        type: 'loss',
        time,
        problem: v.problem,
        anchorSeq: v.anchor?.seq,
        anchorHash: v.anchor?.hash,
        anchorBoot: v.anchor?.boot,
        foundSeq: s.lastSeq,
        foundHash: s.lastHash,
        reason: s.lossReason,
        keyId,
      },
      signer,
    );
    loss = JSON.parse(line) as LossRecord;
    add(line);
  }
  if (s.startBoot !== undefined) {
    add(
      await signedRecordLine(
        { seq: ++seq, prev: hash, type: 'start', time, boot: s.startBoot, keyId },
        signer,
      ),
    );
  }
  return { lines, seq, hash, loss };
}

/** When a batch ends with a checkpoint: at close, every `every` events, or when one is due. */
export interface CheckpointPolicy {
  readonly closing: boolean;
  readonly every: number;
  /** The interval passed with events unsigned. */
  readonly due: boolean;
}

/**
 * The lines of one write: the events chained on from (`lastSeq`, `lastHash`), then a signed
 * checkpoint when the policy calls for one. `unsigned` counts events since the last checkpoint.
 */
export async function batchRecords(
  events: readonly AuditEvent[],
  from: { readonly lastSeq: number; readonly lastHash: string; readonly unsigned: number },
  policy: CheckpointPolicy,
  signer: AuditSigner,
  time: string,
): Promise<{
  lines: string[];
  seq: number;
  hash: string;
  checkpoint: CheckpointRecord['reason'] | undefined;
}> {
  let seq = from.lastSeq;
  let hash = from.lastHash;
  const lines: string[] = [];
  for (const event of events) {
    const line = eventLine(++seq, hash, event);
    hash = lineHash(line);
    lines.push(line);
  }
  const count = from.unsigned + events.length;
  let reason: CheckpointRecord['reason'] | undefined;
  if (policy.closing) reason = 'close';
  else if (count >= policy.every || (policy.due && count > 0)) reason = 'interval';
  if (reason !== undefined) {
    const unsigned = {
      seq: ++seq,
      prev: hash,
      type: 'checkpoint' as const,
      time,
      reason,
      count,
      keyId: signer.keyId,
    };
    const line = await signedRecordLine(unsigned, signer);
    hash = lineHash(line);
    lines.push(line);
  }
  return { lines, seq, hash, checkpoint: reason };
}

/** The signed `rotate` checkpoint that ends a file: the record after `from`, covering its unsigned events. */
export function rotateCheckpointLine(
  from: { readonly lastSeq: number; readonly lastHash: string; readonly unsigned: number },
  signer: AuditSigner,
  time: string,
): Promise<string> {
  const rotate = {
    seq: from.lastSeq + 1,
    prev: from.lastHash,
    type: 'checkpoint',
    time,
    reason: 'rotate',
    count: from.unsigned,
    keyId: signer.keyId,
  } as const;
  return signedRecordLine(rotate, signer);
}
