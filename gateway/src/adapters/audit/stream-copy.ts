import type { Writable } from 'node:stream';
import { KeygateError } from '@keygate/shared/errors';

export interface AuditStreamCopyOptions {
  /** Told once when the stream fails, and once per episode of lines dropped for a stalled stream. */
  readonly onError: (err: KeygateError) => void;
  /** Lines are dropped (and counted) while more than this many bytes wait in the stream (default 64 MiB). */
  readonly maxBufferedBytes?: number;
}

/**
 * Copies the audit log to a stream such as stdout for log shippers: every record line exactly as
 * the file log holds it (events, checkpoints, start, recovery and loss records, with seq and
 * prev), after its durable write, so a shipped copy is a chain `audit verify` can check and that
 * anchors the file log. It never fails or delays a request: the write is not awaited, a failed
 * stream is reported once and left alone, and a stalled one has lines dropped rather than
 * memory filled (the copy then shows a gap there).
 */
export class AuditStreamCopy {
  readonly #out: Writable;
  readonly #o: AuditStreamCopyOptions;
  readonly #max: number;
  #failed = false;
  #dropping = false;
  #dropped = 0;

  constructor(out: Writable, opts: AuditStreamCopyOptions) {
    this.#out = out;
    this.#o = opts;
    this.#max = opts.maxBufferedBytes ?? 64 * 1024 * 1024;
    out.on('error', (err: Error) => this.#streamFailed(err));
  }

  /** Writes whole record lines (each ending in a newline). Never throws. */
  write(text: string): void {
    if (this.#failed || this.#out.destroyed) return;
    if (this.#out.writableLength > this.#max) {
      this.#dropped += countLines(text);
      if (!this.#dropping) {
        this.#dropping = true;
        this.#o.onError(
          new KeygateError('AUDIT_UNAVAILABLE', {
            detail: {
              sink: 'stream',
              reason: 'the stream is not keeping up: audit lines dropped from the copy',
            },
          }),
        );
      }
      return;
    }
    this.#dropping = false;
    try {
      this.#out.write(text);
    } catch (err) {
      this.#streamFailed(err);
    }
  }

  /** Lines not copied because the stream was stalled. */
  get dropped(): number {
    return this.#dropped;
  }

  #streamFailed(cause: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#o.onError(new KeygateError('AUDIT_UNAVAILABLE', { cause, detail: { sink: 'stream' } }));
  }
}

function countLines(text: string): number {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
}
