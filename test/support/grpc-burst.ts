import { type ClientHttp2Session, constants, connect as h2connect } from 'node:http2';
import { connect as netConnect } from 'node:net';

/** One call's outcome: the gRPC status, when it ended (ms after the burst began) and the answer. */
export interface BurstOutcome {
  readonly code: number;
  readonly atMs: number;
  readonly ciphertext?: Buffer;
  readonly keyId?: string;
}

const DEADLINE_EXCEEDED = 4;

/**
 * Sends `count` v2 Encrypt calls at once over one HTTP/2 connection to the shim's UNIX socket,
 * with plain gRPC framing (a 5-byte prefix and the protobuf bytes, built once). grpc-js spends
 * about twice the shim's CPU per call on the client side, so a burst from it measures mostly
 * the test process on a small machine; kube-apiserver's Go client is far cheaper. Each call
 * carries `grpc-timeout` like apiserver's and is cancelled and counted as DEADLINE_EXCEEDED
 * when no answer came within `timeoutMs`.
 */
export async function encryptBurst(
  socket: string,
  plaintext: Buffer,
  count: number,
  timeoutMs = 3000,
): Promise<BurstOutcome[]> {
  const session: ClientHttp2Session = h2connect('http://localhost', {
    createConnection: () => netConnect(socket),
  });
  await new Promise<void>((resolve, reject) => {
    session.once('connect', () => resolve());
    session.once('error', reject);
  });
  const msg = Buffer.concat([field(1, plaintext), field(2, Buffer.from('burst'))]);
  const frame = Buffer.alloc(5 + msg.length);
  frame.writeUInt32BE(msg.length, 1);
  msg.copy(frame, 5);
  const start = performance.now();
  const pending = new Set<() => void>();
  const timer = setTimeout(() => {
    for (const cancel of [...pending]) cancel();
  }, timeoutMs);
  try {
    return await Promise.all(
      Array.from(
        { length: count },
        () =>
          new Promise<BurstOutcome>((resolve) => {
            const req = session.request({
              ':method': 'POST',
              ':path': '/v2.KeyManagementService/Encrypt',
              'content-type': 'application/grpc',
              te: 'trailers',
              'grpc-timeout': `${timeoutMs}m`,
            });
            const chunks: Buffer[] = [];
            let status: number | undefined;
            const done = (code: number) => {
              if (!pending.delete(cancel)) return;
              resolve({ code, atMs: performance.now() - start, ...decodeResponse(code, chunks) });
            };
            const cancel = () => {
              done(DEADLINE_EXCEEDED);
              req.close(constants.NGHTTP2_CANCEL);
            };
            pending.add(cancel);
            req.on('response', (h) => {
              if (h['grpc-status'] !== undefined) status = Number(h['grpc-status']);
            });
            req.on('trailers', (t) => {
              if (t['grpc-status'] !== undefined) status = Number(t['grpc-status']);
            });
            req.on('data', (c: Buffer) => chunks.push(c));
            req.on('close', () => done(status ?? 2));
            req.on('error', () => undefined);
            req.end(frame);
          }),
      ),
    );
  } finally {
    clearTimeout(timer);
    session.close();
  }
}

function field(no: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(no << 3) | 2]), varint(value.length), value]);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}

/** Fields 1 (ciphertext) and 2 (key_id) of an EncryptResponse, when the call succeeded. */
function decodeResponse(code: number, chunks: Buffer[]): { ciphertext?: Buffer; keyId?: string } {
  if (code !== 0) return {};
  const body = Buffer.concat(chunks).subarray(5);
  const out: { ciphertext?: Buffer; keyId?: string } = {};
  let i = 0;
  while (i < body.length) {
    const tag = body[i++] as number;
    let len = 0;
    for (let shift = 0; ; shift += 7) {
      const b = body[i++] as number;
      len |= (b & 0x7f) << shift;
      if (b < 0x80) break;
    }
    const value = body.subarray(i, i + len);
    i += len;
    if (tag === 0x0a) out.ciphertext = Buffer.from(value);
    else if (tag === 0x12) out.keyId = value.toString('utf8');
  }
  return out;
}
