/**
 * The SQL of the one audit hash chain in PostgreSQL (`keygate_audit`, `keygate_audit_head`): in a
 * transaction the caller opened, lock the keys a batch used (the destroy guard) and the head row,
 * then chain the batch's record lines on from the head, insert them and move the head. The sink's
 * queue, group commit and availability live in pg-audit-sink.ts; this module only writes.
 */
import { KeyState } from '@keygate/shared/api';
import { KeygateError } from '@keygate/shared/errors';
import type { AuditEvent } from '../../core/audit/audit-event.js';
import { lineHash } from '../../core/audit/audit-record.js';
import type { AuditSigner } from '../../core/audit/audit-signer.js';
import { batchRecords, signedRecordLine } from '../../core/audit/record-lines.js';
import type { PgClient } from '../postgres/pg-database.js';

/** The chain's head row, as read under its update lock. */
export interface ChainHead {
  seq: string;
  hash: string;
  boot: number;
  since_checkpoint: number;
}

/** What one append to the chain writes, and with what. */
export interface ChainAppend {
  readonly events: readonly AuditEvent[];
  /** Write a signed start record for `replica` first (boot = the chain's last boot + 1). */
  readonly start: boolean;
  /** End with a `close` checkpoint. */
  readonly closing: boolean;
  /** End with an `interval` checkpoint when events are unsigned. */
  readonly checkpointDue: boolean;
  readonly signer: AuditSigner;
  readonly replica: string;
  /** A checkpoint once this many events of the chain are unsigned. */
  readonly checkpointEvery: number;
  /** ISO 8601 time of the start and checkpoint records. */
  readonly time: string;
}

export interface ChainAppended {
  /** seq and hash of the chain's head after the append. */
  readonly seq: number;
  readonly hash: string;
  readonly boot: number;
  readonly checkpoint: 'interval' | 'close' | undefined;
  /** Records were written (false: nothing was due). */
  readonly wrote: boolean;
}

/** Key operations whose answer carries key material made with the key: wrap, unwrap, rewrap. */
const KEY_USES: ReadonlySet<string> = new Set(['wrap', 'unwrap', 'rewrap']);

/**
 * The destroy guard (docs/audit.md "PostgreSQL"): in the transaction that commits their audit
 * records, the successful key uses of a batch take a share lock on their keys' rows and read the
 * state. A key that was destroyed, disabled or removed by any replica since the request read its
 * (possibly cached) record makes that request's record a failure and its answer that error, so
 * no answer made with a key leaves a replica after the key's state change committed. A destroy
 * (which takes the row's update lock) and a key use are thereby serialized: whichever commits
 * first is first. The same statement locks the chain's head row (one round trip: the head is
 * the one serialization point of all replicas, so every round trip under it counts).
 */
export async function lockKeysAndHead<P extends { readonly event: AuditEvent }>(
  client: PgClient,
  batch: readonly P[],
): Promise<{ head: ChainHead; refused: Map<P, KeygateError> }> {
  const uses = batch.filter(
    (p) =>
      p.event.outcome === 'success' &&
      KEY_USES.has(p.event.operation) &&
      p.event.instance !== undefined &&
      p.event.keyId !== undefined,
  );
  const pairs = [...new Map(uses.map((p) => [slot(p.event.instance, p.event.keyId), p.event])).values()];
  const r = await client.query<ChainHead & { keys: [string, string, number][] | null }>(
    `WITH k AS (
       SELECT k.instance, k.id, k.state FROM keygate_keys k
         JOIN unnest($1::text[], $2::text[]) AS u(instance, id) ON k.instance = u.instance AND k.id = u.id
        ORDER BY k.instance, k.id
          FOR SHARE OF k
     )
     SELECT h.seq::text AS seq, h.hash, h.boot, h.since_checkpoint,
            (SELECT json_agg(json_build_array(k.instance, k.id, k.state)) FROM k) AS keys
       FROM keygate_audit_head h WHERE h.id = 1 FOR UPDATE OF h`,
    [pairs.map((e) => e.instance), pairs.map((e) => e.keyId)],
  );
  const row = r.rows[0];
  if (row === undefined) throw new Error('keygate_audit_head has no row (schema not migrated?)');
  const states = new Map((row.keys ?? []).map(([instance, id, state]) => [slot(instance, id), state]));
  const refused = new Map<P, KeygateError>();
  for (const p of uses) {
    const state = states.get(slot(p.event.instance, p.event.keyId));
    const detail = { keyId: p.event.keyId as string };
    if (state === undefined) refused.set(p, new KeygateError('KEY_NOT_FOUND_ERR', { detail }));
    else if (state === KeyState.DESTROYED) refused.set(p, new KeygateError('KEY_DELETED_ERR', { detail }));
    else if (state !== KeyState.ACTIVE) {
      refused.set(p, new KeygateError('KEY_ACTION_INVALID_STATE_ERR', { detail: { ...detail, state } }));
    }
  }
  const { keys: _, ...head } = row;
  return { head, refused };
}

function slot(instance: string | undefined, id: string | undefined): string {
  return `${instance}\u0000${id}`;
}

export async function appendLocked(
  client: PgClient,
  head: ChainHead,
  a: ChainAppend,
): Promise<ChainAppended> {
  let seq = Number(head.seq);
  let hash = head.hash;
  let boot = head.boot;
  const lines: string[] = [];
  if (a.start) {
    boot += 1;
    const start = { seq: ++seq, prev: hash, type: 'start', time: a.time, boot, replica: a.replica } as const;
    const line = await signedRecordLine({ ...start, keyId: a.signer.keyId }, a.signer);
    lines.push(line);
    hash = lineHash(line);
  }
  const from = { lastSeq: seq, lastHash: hash, unsigned: head.since_checkpoint };
  const policy = { closing: a.closing, every: a.checkpointEvery, due: a.checkpointDue };
  const b = await batchRecords(a.events, from, policy, a.signer, a.time);
  lines.push(...b.lines);
  const unsigned = b.checkpoint === undefined ? head.since_checkpoint + a.events.length : 0;
  if (lines.length > 0) {
    await insertLinesAndMoveHead(client, Number(head.seq) + 1, lines, a.replica, {
      seq: b.seq,
      hash: b.hash,
      boot,
      unsigned,
    });
  }
  const checkpoint = b.checkpoint === 'rotate' ? undefined : b.checkpoint;
  return { seq: b.seq, hash: b.hash, boot, checkpoint, wrote: lines.length > 0 };
}

/**
 * One statement for the whole batch: the rows (arrays unnested; seq numbers from `firstSeq` on)
 * and the head moved to the last of them.
 */
async function insertLinesAndMoveHead(
  client: PgClient,
  firstSeq: number,
  lines: readonly string[],
  replica: string,
  to: { readonly seq: number; readonly hash: string; readonly boot: number; readonly unsigned: number },
): Promise<void> {
  const seqs = lines.map((_, i) => String(firstSeq + i));
  const hashes = lines.map((l) => lineHash(l));
  const types = lines.map(recordType);
  await client.query(
    `WITH rows AS (
       INSERT INTO keygate_audit (seq, hash, type, replica, line)
       SELECT s, h, t, $4, l FROM unnest($1::bigint[], $2::text[], $3::text[], $5::text[]) AS x(s, h, t, l)
     )
     UPDATE keygate_audit_head SET seq = $6, hash = $7, boot = $8, since_checkpoint = $9 WHERE id = 1`,
    [seqs, hashes, types, replica, lines, String(to.seq), to.hash, to.boot, to.unsigned],
  );
}

/** The `type` of a record line this module built (always the third field). */
function recordType(line: string): string {
  return /^\{"seq":\d+,"prev":"[0-9a-f]{64}","type":"([a-z]+)"/.exec(line)?.[1] ?? 'unknown';
}
