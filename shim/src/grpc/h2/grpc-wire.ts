/**
 * gRPC over HTTP/2 (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md), the parts a
 * unary server needs: the grpc-timeout header, the 5-byte message framing (compressed flag and
 * big-endian length), and the percent-encoding of grpc-message.
 */

/** The grpc-timeout header ("1-8 digits" + H/M/S/m/u/n) as a deadline in epoch ms; undefined if absent or invalid. */
export function deadlineFrom(header: string | string[] | undefined, now: number): number | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(header);
  if (!m) return undefined;
  const n = Number(m[1]);
  const unitMs = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 }[m[2] as 'H'];
  return now + n * unitMs;
}

/** One length-prefixed message, uncompressed. */
export function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/** grpc-message: percent-encode bytes outside 0x20..0x7e, and '%' itself (UTF-8 first). */
export function encodeGrpcMessage(text: string): string {
  // Printable ASCII except "%" goes as it is (the common case: the fixed English texts).
  if (/^[ -$&-~]*$/.test(text)) return text;
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out +=
      b >= 0x20 && b <= 0x7e && b !== 0x25
        ? String.fromCharCode(b)
        : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export type FrameResult =
  | { readonly kind: 'message'; readonly message: Buffer }
  | { readonly kind: 'none' }
  | { readonly kind: 'error'; readonly status: number; readonly text: string };

/**
 * The single request message of a unary call from the concatenated DATA of the stream: exactly
 * one frame, uncompressed (the shim advertises only identity), at most `maxBytes`.
 */
export function unaryMessage(data: Buffer, maxBytes: number): FrameResult {
  if (data.length === 0) return { kind: 'none' };
  if (data.length < 5) return { kind: 'error', status: 13, text: 'Truncated gRPC message frame' };
  const len = data.readUInt32BE(1);
  if (len > maxBytes) {
    return {
      kind: 'error',
      status: 8,
      text: `Received message larger than max (${len} vs. ${maxBytes})`,
    };
  }
  if (data[0] !== 0) return { kind: 'error', status: 12, text: 'Compressed messages are not supported' };
  if (data.length < 5 + len) return { kind: 'error', status: 13, text: 'Truncated gRPC message frame' };
  if (data.length > 5 + len) {
    return { kind: 'error', status: 13, text: 'More than one request message in a unary call' };
  }
  return { kind: 'message', message: data.subarray(5) };
}
