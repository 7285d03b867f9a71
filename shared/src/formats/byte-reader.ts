import { KeygateError } from '../errors/index.js';

/**
 * A bounds-checked cursor over untrusted bytes. Every read past the end throws
 * UNPROCESSABLE_CIPHERTEXT_ERR, never a RangeError.
 */
export class ByteReader {
  #offset = 0;

  constructor(private readonly buf: Buffer) {}

  get offset(): number {
    return this.#offset;
  }

  get remaining(): number {
    return this.buf.length - this.#offset;
  }

  u8(): number {
    this.need(1);
    const v = this.buf[this.#offset] as number;
    this.#offset += 1;
    return v;
  }

  u16(): number {
    this.need(2);
    const v = this.buf.readUInt16BE(this.#offset);
    this.#offset += 2;
    return v;
  }

  bytes(n: number): Buffer {
    this.need(n);
    const v = this.buf.subarray(this.#offset, this.#offset + n);
    this.#offset += n;
    return v;
  }

  private need(n: number): void {
    if (n < 0 || this.#offset + n > this.buf.length) {
      throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { detail: { reason: 'truncated' } });
    }
  }
}

/** Throws UNPROCESSABLE_CIPHERTEXT_ERR with a log-only reason. */
export function malformed(reason: string): never {
  throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { detail: { reason } });
}
