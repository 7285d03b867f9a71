import type { AuditProblem } from './audit-problem.js';
import { type AuditRecord, GENESIS_PREV, lineHash } from './audit-record.js';
import type { AuditVerifyKey } from './audit-signer.js';
import { type ExpectedHead, expectedHeadProblem, type FoundRecord } from './expected-head.js';
import { type LossSummary, RunTracker, signatureProblem } from './signed-records.js';

export type { AuditProblem, AuditProblemKind } from './audit-problem.js';
export type { ExpectedHead } from './expected-head.js';
export type { LossSummary } from './signed-records.js';

export interface AuditVerifyReport {
  readonly ok: boolean;
  readonly problem?: AuditProblem | undefined;
  readonly files: number;
  readonly records: number;
  readonly events: number;
  readonly checkpoints: number;
  readonly starts: number;
  readonly losses: readonly LossSummary[];
  /** seq and line hash of the last good record (0 and the genesis value when none): the head to note. */
  readonly lastSeq: number;
  readonly lastHash: string;
  /** boot of the last start record (0 when none). */
  readonly lastBoot: number;
  /**
   * The log ends with a close checkpoint: its last run ended cleanly. It says nothing about records
   * cut off since: a log cut back to an earlier clean shutdown is sealed too (check it against a
   * noted head, the anchor or the stream copy: `expect`).
   */
  readonly sealed: boolean;
}

export interface ChainVerifyOptions {
  /** Fail with `truncated` unless the last record is a close checkpoint (the last run ended cleanly). */
  readonly requireSealed?: boolean;
  /** Accept a first file that does not start at seq 1 (older files removed by retention). */
  readonly allowPrunedStart?: boolean;
  /** Fail with `cut-back` or `replaced` unless record `seq` is in the log with this hash. */
  readonly expect?: ExpectedHead | undefined;
}

const HEX64 = /^[0-9a-f]{64}$/;
const TYPES = new Set(['event', 'checkpoint', 'recovery', 'start', 'loss']);

/**
 * Checks a hash-chained audit log file by file, in order, and stops at the first problem:
 * an edited line (the next record's `prev` does not match its hash), a removed or reordered
 * record (seq gap or order), a torn last line, a checkpoint, start or loss record whose signature
 * does not verify, or start records whose boots do not count up by one (except after a loss).
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
  readonly #runs: RunTracker;
  #lastSeq = 0;
  #lastFile = '';
  #lastLine = 0;
  #sealed = false;
  #atExpected: FoundRecord | undefined;

  constructor(keys: readonly AuditVerifyKey[], opts: ChainVerifyOptions = {}) {
    this.#keys = new Map(keys.map((k) => [k.keyId, k]));
    this.#opts = opts;
    this.#expectedSeq = opts.allowPrunedStart === true ? undefined : 1;
    this.#runs = new RunTracker(opts.allowPrunedStart === true);
  }

  /**
   * Feeds the next file's bytes. Returns the first problem found so far (then stop feeding).
   * `part`: these bytes go on the file of the previous call (a table read page by page), so the
   * file is not counted again and lines are numbered on from `firstLine`.
   */
  addFile(file: string, bytes: Uint8Array, part?: { readonly firstLine: number }): AuditProblem | undefined {
    if (this.#problem !== undefined) return this.#problem;
    if (part === undefined) this.#files++;
    const firstLine = part?.firstLine ?? 1;
    const lines = splitLines(bytes);
    // Last line index of each seq in this file, to tell a reordered record from a removed one.
    const lastIndex = new Map<number, number>();
    lines.complete.forEach((l, i) => {
      const seq = quickSeq(l);
      if (seq !== undefined) lastIndex.set(seq, i);
    });
    for (const [i, line] of lines.complete.entries()) {
      const comesLater = (seq: number) => (lastIndex.get(seq) ?? -1) > i;
      const problem = this.#checkLine(file, firstLine + i, line, comesLater);
      if (problem !== undefined) return this.#fail(problem);
    }
    if (lines.torn !== undefined) {
      return this.#fail({
        kind: 'torn',
        file,
        line: firstLine + lines.complete.length,
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
    const at = { file: this.#lastFile, line: this.#lastLine };
    if (this.#problem === undefined && this.#records === 0) {
      this.#fail({
        kind: 'empty',
        ...at,
        message: `no audit records (${this.#files} files, all empty or none): the log was erased, or was never written`,
      });
    }
    if (this.#problem === undefined && this.#opts.requireSealed === true && !this.#sealed) {
      this.#fail({
        kind: 'truncated',
        ...at,
        message:
          'the log does not end with a close checkpoint: its last run did not end cleanly (the gateway is running or crashed), or records were cut off its end',
      });
    }
    const expect = this.#opts.expect;
    if (this.#problem === undefined && expect !== undefined) {
      const losses = this.#runs.losses.length;
      const problem = expectedHeadProblem(expect, this.#atExpected, {
        lastSeq: this.#lastSeq,
        end: at,
        losses,
      });
      if (problem !== undefined) this.#fail(problem);
    }
    return {
      ok: this.#problem === undefined,
      problem: this.#problem,
      files: this.#files,
      records: this.#records,
      events: this.#events,
      checkpoints: this.#checkpoints,
      starts: this.#runs.starts,
      losses: this.#runs.losses,
      lastSeq: this.#lastSeq,
      lastHash: this.#prevHash,
      lastBoot: this.#runs.lastBoot ?? 0,
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
    if (rec.type === 'checkpoint' || rec.type === 'start' || rec.type === 'loss') {
      const problem = signatureProblem(rec, this.#keys, at) ?? this.#runs.take(rec, at);
      if (problem !== undefined) return problem;
    }
    if (rec.type === 'checkpoint') this.#checkpoints++;
    if (rec.type === 'event') this.#events++;
    this.#records++;
    this.#sealed = rec.type === 'checkpoint' && rec.reason === 'close';
    this.#prevHash = lineHash(bytes);
    this.#prevAt = at;
    this.#expectedSeq = expected + 1;
    this.#lastSeq = rec.seq;
    this.#lastFile = file;
    this.#lastLine = line;
    if (rec.seq === this.#opts.expect?.seq) {
      this.#atExpected = { hash: this.#prevHash, boot: this.#runs.lastBoot, ...at };
    }
    return undefined;
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
