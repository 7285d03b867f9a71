import {
  type AuditRecord,
  type CheckpointRecord,
  checkpointSigningInput,
  GENESIS_PREV,
  lineHash,
} from './audit-record.js';
import type { AuditVerifyKey } from './audit-signer.js';

export type AuditProblemKind =
  | 'edited'
  | 'removed'
  | 'reordered'
  | 'torn'
  | 'truncated'
  | 'malformed'
  | 'bad-checkpoint';

/** The first thing wrong with an audit log, and where. Lines are 1-based within `file`. */
export interface AuditProblem {
  readonly kind: AuditProblemKind;
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

export interface AuditVerifyReport {
  readonly ok: boolean;
  readonly problem?: AuditProblem | undefined;
  readonly files: number;
  readonly records: number;
  readonly events: number;
  readonly checkpoints: number;
  /** seq of the last good record (0 when none). */
  readonly lastSeq: number;
  /** The log ends with a close checkpoint: nothing can have been cut off its end. */
  readonly sealed: boolean;
}

export interface ChainVerifyOptions {
  /** Fail with `truncated` unless the last record is a close checkpoint (use on a stopped gateway). */
  readonly requireSealed?: boolean;
  /** Accept a first file that does not start at seq 1 (older files removed by retention). */
  readonly allowPrunedStart?: boolean;
}

const HEX64 = /^[0-9a-f]{64}$/;
const TYPES = new Set(['event', 'checkpoint', 'recovery']);

/**
 * Checks a hash-chained audit log file by file, in order, and stops at the first problem:
 * an edited line (the next record's `prev` does not match its hash), a removed or reordered
 * record (seq gap or order), a torn last line, or a checkpoint whose signature does not verify.
 */
export class ChainVerifier {
  readonly #keys: ReadonlyMap<string, AuditVerifyKey>;
  readonly #opts: ChainVerifyOptions;
  #expectedSeq: number | undefined;
  #prevHash = GENESIS_PREV;
  #prevAt: { file: string; line: number } | undefined;
  #problem: AuditProblem | undefined;
  #files = 0;
  #records = 0;
  #events = 0;
  #checkpoints = 0;
  #lastSeq = 0;
  #lastFile = '';
  #lastLine = 0;
  #sealed = false;

  constructor(keys: readonly AuditVerifyKey[], opts: ChainVerifyOptions = {}) {
    this.#keys = new Map(keys.map((k) => [k.keyId, k]));
    this.#opts = opts;
    this.#expectedSeq = opts.allowPrunedStart === true ? undefined : 1;
  }

  /** Feeds the next file's bytes. Returns the first problem found so far (then stop feeding). */
  addFile(file: string, bytes: Uint8Array): AuditProblem | undefined {
    if (this.#problem !== undefined) return this.#problem;
    this.#files++;
    const lines = splitLines(bytes);
    // Last line index of each seq in this file, to tell a reordered record from a removed one.
    const lastIndex = new Map<number, number>();
    lines.complete.forEach((l, i) => {
      const seq = quickSeq(l);
      if (seq !== undefined) lastIndex.set(seq, i);
    });
    for (const [i, line] of lines.complete.entries()) {
      const comesLater = (seq: number) => (lastIndex.get(seq) ?? -1) > i;
      const problem = this.#checkLine(file, i + 1, line, comesLater);
      if (problem !== undefined) return this.#fail(problem);
    }
    if (lines.torn !== undefined) {
      return this.#fail({
        kind: 'torn',
        file,
        line: lines.complete.length + 1,
        message: `torn last line: ${lines.torn.length} bytes without a newline (a crash mid-write, or the file was cut); the gateway cuts it away and records a recovery record when it next opens the log`,
      });
    }
    return undefined;
  }

  /** seq of the last good record so far (0 when none). */
  get lastSeq(): number {
    return this.#lastSeq;
  }

  /** The verdict after every file was fed. */
  finish(): AuditVerifyReport {
    if (this.#problem === undefined && this.#opts.requireSealed === true && !this.#sealed) {
      this.#fail({
        kind: 'truncated',
        file: this.#lastFile,
        line: this.#lastLine,
        message:
          'the log does not end with a close checkpoint: records may have been cut off its end (or the gateway is still running or crashed)',
      });
    }
    return {
      ok: this.#problem === undefined,
      problem: this.#problem,
      files: this.#files,
      records: this.#records,
      events: this.#events,
      checkpoints: this.#checkpoints,
      lastSeq: this.#lastSeq,
      sealed: this.#sealed,
    };
  }

  #fail(problem: AuditProblem): AuditProblem {
    this.#problem = problem;
    return problem;
  }

  #checkLine(
    file: string,
    line: number,
    bytes: Uint8Array,
    comesLater: (seq: number) => boolean,
  ): AuditProblem | undefined {
    const at = { file, line };
    let rec: AuditRecord;
    try {
      rec = JSON.parse(Buffer.from(bytes).toString('utf8')) as AuditRecord;
    } catch {
      return { kind: 'malformed', ...at, message: 'not a JSON record (edited?)' };
    }
    if (
      typeof rec !== 'object' ||
      rec === null ||
      !Number.isSafeInteger(rec.seq) ||
      typeof rec.prev !== 'string' ||
      !HEX64.test(rec.prev) ||
      !TYPES.has(rec.type)
    ) {
      return { kind: 'malformed', ...at, message: 'missing or invalid seq, prev or type (edited?)' };
    }
    if (this.#expectedSeq === undefined) {
      this.#expectedSeq = rec.seq;
      this.#prevHash = rec.prev;
    }
    const expected = this.#expectedSeq;
    if (rec.seq !== expected) {
      if (rec.seq < expected || comesLater(expected)) {
        return {
          kind: 'reordered',
          ...at,
          message: `record seq ${rec.seq} where seq ${expected} was expected: records are out of order`,
        };
      }
      const missing = rec.seq - 1 === expected ? `seq ${expected} is` : `seq ${expected}..${rec.seq - 1} are`;
      return { kind: 'removed', ...at, message: `record ${missing} missing before this line` };
    }
    if (rec.prev !== this.#prevHash) {
      if (this.#prevAt === undefined) {
        return {
          kind: 'edited',
          ...at,
          message: 'the first record does not start the chain (prev is not the genesis value)',
        };
      }
      return {
        kind: 'edited',
        ...this.#prevAt,
        message: `record seq ${rec.seq - 1} was changed: its hash no longer matches the prev of seq ${rec.seq} (${file}:${line})`,
      };
    }
    if (rec.type === 'checkpoint') {
      const problem = this.#checkCheckpoint(rec, at);
      if (problem !== undefined) return problem;
      this.#checkpoints++;
    }
    if (rec.type === 'event') this.#events++;
    this.#records++;
    this.#sealed = rec.type === 'checkpoint' && rec.reason === 'close';
    this.#prevHash = lineHash(bytes);
    this.#prevAt = at;
    this.#expectedSeq = expected + 1;
    this.#lastSeq = rec.seq;
    this.#lastFile = file;
    this.#lastLine = line;
    return undefined;
  }

  #checkCheckpoint(rec: CheckpointRecord, at: { file: string; line: number }): AuditProblem | undefined {
    const key = this.#keys.get(rec.keyId);
    if (key === undefined) {
      return {
        kind: 'bad-checkpoint',
        ...at,
        message: `checkpoint seq ${rec.seq} is signed by unknown key ${String(rec.keyId)}`,
      };
    }
    const { sig, ...unsigned } = rec;
    let ok = false;
    try {
      ok =
        typeof sig === 'string' &&
        key.verify(checkpointSigningInput(unsigned), Buffer.from(sig, 'base64url'));
    } catch {
      ok = false;
    }
    return ok
      ? undefined
      : { kind: 'bad-checkpoint', ...at, message: `checkpoint seq ${rec.seq} has a bad signature` };
  }
}

/** Splits on `\n`; bytes after the last newline are a torn line. */
export function splitLines(bytes: Uint8Array): { complete: Uint8Array[]; torn: Uint8Array | undefined } {
  const complete: Uint8Array[] = [];
  let start = 0;
  for (let i = bytes.indexOf(0x0a); i >= 0; i = bytes.indexOf(0x0a, start)) {
    complete.push(bytes.subarray(start, i));
    start = i + 1;
  }
  return { complete, torn: start < bytes.length ? bytes.subarray(start) : undefined };
}

function quickSeq(line: Uint8Array): number | undefined {
  const m = /^\{"seq":(\d+),/.exec(Buffer.from(line.subarray(0, 32)).toString('latin1'));
  return m?.[1] === undefined ? undefined : Number(m[1]);
}
