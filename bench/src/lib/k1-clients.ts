import { execFile } from 'node:child_process';
import type { KmsClient } from '@keygate/shim';
import { type LoadResult, runLoad } from './measure.js';

/**
 * K1's two load clients for v2 Encrypt+Decrypt round trips: the project's KmsClient (grpc-js) in
 * the bench process, or the Go load client (bench/peers/kms-plugin/load) in its own process. Each
 * reports the CPU time the client used, so the bench can say when the client is the limit.
 */
export interface Side {
  readonly name: string;
  run(concurrency: number, ms: number): Promise<{ res: LoadResult; cpuSeconds: number }>;
}

export type ClientKind = 'go' | 'node';

/** BENCH_K1_CLIENT=node|go (default go: the Node client saturates its core before the Go peer does). */
export function clientKind(): ClientKind {
  return process.env.BENCH_K1_CLIENT === 'node' ? 'node' : 'go';
}

export function nodeSide(name: string, kms: KmsClient, plain: Buffer): Side {
  const call = async () => {
    const e = await kms.encrypt(plain, 'k1');
    await kms.decrypt(e.ciphertext, e.key_id, 'k1');
  };
  return {
    name,
    async run(c, ms) {
      const cpu0 = process.cpuUsage();
      const res = await runLoad(call, c, ms);
      const cpu = process.cpuUsage(cpu0);
      return { res, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
    },
  };
}

interface GoLoadOutput {
  ops: number;
  errors: number;
  seconds: number;
  latencies: number[] | null;
  cpuSeconds: number;
  firstError?: string;
}

export function goSide(name: string, loadBin: string, socket: string, plainBytes = 32): Side {
  return {
    name,
    run(c, ms) {
      const args = [
        `-socket=${socket}`,
        `-c=${c}`,
        `-duration=${Math.round(ms)}ms`,
        `-plain-bytes=${plainBytes}`,
      ];
      return new Promise((resolve, reject) => {
        execFile(loadBin, args, { maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
          if (err) {
            reject(new Error(`${name}: kms-load failed: ${stderr.slice(0, 400) || err.message}`));
            return;
          }
          const o = JSON.parse(stdout) as GoLoadOutput;
          resolve({
            res: {
              ops: o.ops,
              errors: o.errors,
              seconds: o.seconds,
              latencies: Float64Array.from(o.latencies ?? []),
              firstError: o.firstError,
            },
            cpuSeconds: o.cpuSeconds,
          });
        });
      });
    },
  };
}
