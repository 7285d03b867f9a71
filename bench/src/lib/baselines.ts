import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Proc, spawnProc } from './procs.js';
import type { PreparedStack } from './stack.js';
import { BENCH_HOME } from './stack.js';

const SERVERS = new URL('../servers/', import.meta.url).pathname;

export interface GrpcEcho {
  readonly proc: Proc;
  readonly socket: string;
}

/** The grpc-js echo server (baseline of S1-S4) with answers of the shim's sizes. */
export async function startGrpcEcho(
  name: string,
  sizes: { plainBytes: number; cipherBytes: number; keyId: string },
): Promise<GrpcEcho> {
  const socket = join(BENCH_HOME, 'sock', `echo-${name}.sock`);
  const proc = spawnProc(`grpc-echo-${name}`, [join(SERVERS, 'grpc-echo.js')], {
    env: {
      ECHO_SOCKET: socket,
      ECHO_PLAIN_BYTES: String(sizes.plainBytes),
      ECHO_CIPHER_BYTES: String(sizes.cipherBytes),
      ECHO_KEY_ID: sizes.keyId,
    },
    logFile: join(BENCH_HOME, 'logs', `grpc-echo-${name}.log`),
  });
  await proc.waitForLine(/grpc echo listening/);
  return { proc, socket };
}

export interface HttpsEcho {
  readonly proc: Proc;
  readonly url: string;
}

/** The bare node:https mTLS echo (baseline of G1/G2), answering `response`. */
export async function startHttpsEcho(p: PreparedStack, name: string, response: string): Promise<HttpsEcho> {
  const bodyFile = join(BENCH_HOME, `echo-${name}.json`);
  writeFileSync(bodyFile, response);
  const proc = spawnProc(`https-echo-${name}`, [join(SERVERS, 'https-echo.js')], {
    env: {
      ECHO_CERT: p.pki.serverCertFile,
      ECHO_KEY: p.pki.serverKeyFile,
      ECHO_CA: p.pki.caFile,
      ECHO_BODY_FILE: bodyFile,
    },
    logFile: join(BENCH_HOME, 'logs', `https-echo-${name}.log`),
  });
  const line = await proc.waitForLine(/https echo listening/);
  return { proc, url: (JSON.parse(line) as { url: string }).url };
}
