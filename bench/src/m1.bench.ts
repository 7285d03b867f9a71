/**
 * M1: memory. Peak RSS of the shim under the S1 load (cached v2 Decrypt, 64 concurrent) and of the
 * gateway under the G1 load (unwrap, 64 concurrent), sampled every 100 ms from /proc.
 * Targets: shim <= 96 MiB, gateway <= 192 MiB. The shim runs twice: with Node's default heap
 * sizing (V8 lets the old space grow lazily far past the live set), and with the heap limits
 * recommended for it (SHIM_NODE_OPTIONS); the target is judged on the latter.
 */
export const SHIM_NODE_OPTIONS =
  process.env.BENCH_SHIM_NODE_OPTIONS ?? '--max-old-space-size=48 --max-semi-space-size=2';

import { readFileSync } from 'node:fs';
import { KmsClient } from '@keygate/shim';
import { fmt, runLoad } from './lib/measure.js';
import { rssSampler } from './lib/procs.js';
import { type BenchResult, mainIf } from './lib/result.js';
import {
  fetchToken,
  MtlsClient,
  prepare,
  stackTls,
  startGateway,
  startShim,
  timing,
  unwrapCall,
  unwrapFixture,
} from './lib/stack.js';

export async function runM1(): Promise<BenchResult> {
  const t0 = performance.now();
  const t = timing();
  const ms = Math.max(1500, t.roundMs * t.rounds * 1.5);
  const p = await prepare();
  const gw = await startGateway(p, { name: 'm1' });
  const shimRun = async (nodeOptions: string | undefined) => {
    const shim = await startShim(p, { name: 'm1', gatewayUrl: gw.url, nodeOptions });
    const kms = new KmsClient(shim.socket);
    const enc = await kms.encrypt(Buffer.alloc(32, 1), 'm1');
    const idle = shim.proc.rssMiB();
    const s = rssSampler([shim.proc], 100);
    const load = await runLoad(() => kms.decrypt(enc.ciphertext, enc.key_id, 'm1'), 64, ms);
    const peak = s.stop()[shim.proc.name] ?? Number.NaN;
    kms.close();
    await shim.proc.stop();
    return { idle, peak, throughput: load.ops / load.seconds };
  };
  const defaults = await shimRun(undefined);
  const limited = await shimRun(SHIM_NODE_OPTIONS);
  const shimIdle = limited.idle;
  const shimPeak = limited.peak;

  const client = new MtlsClient(gw.url, stackTls(p), 64);
  const f = await unwrapFixture(
    p,
    client,
    await fetchToken(client, readFileSync(p.apiKeyFile, 'utf8').trim()),
  );
  const gwIdle = gw.proc.rssMiB();
  const g = rssSampler([gw.proc], 100);
  await runLoad(unwrapCall(client, f), 64, ms);
  const gwPeak = g.stop()[gw.proc.name] ?? Number.NaN;
  await client.close();
  await gw.proc.stop();
  console.log(
    `M1 shim RSS, default heap: idle ${fmt(defaults.idle, 1)} MiB, peak ${fmt(defaults.peak, 1)} MiB (${fmt(defaults.throughput)}/s)`,
  );
  console.log(
    `   shim RSS, ${SHIM_NODE_OPTIONS}: idle ${fmt(shimIdle, 1)} MiB, peak ${fmt(shimPeak, 1)} MiB (${fmt(limited.throughput)}/s) (limit 96)`,
  );
  console.log(`   gateway RSS idle ${fmt(gwIdle, 1)} MiB, peak ${fmt(gwPeak, 1)} MiB under G1 (limit 192)`);
  return {
    id: 'M1',
    title: 'memory: peak RSS under S1 (shim, with heap limits) and G1 (gateway) load, 64 concurrent',
    target: 'shim <= 96 MiB, gateway <= 192 MiB',
    value: Math.max(shimPeak / 96, gwPeak / 192),
    unit: 'x limit (worst)',
    met: shimPeak <= 96 && gwPeak <= 192,
    extra: {
      shimDefaultHeapPeakMiB: Math.round(defaults.peak * 10) / 10,
      shimDefaultHeapPerSecond: Math.round(defaults.throughput),
      shimLimitedHeapPerSecond: Math.round(limited.throughput),
      shimIdleMiB: Math.round(shimIdle * 10) / 10,
      shimPeakMiB: Math.round(shimPeak * 10) / 10,
      gatewayIdleMiB: Math.round(gwIdle * 10) / 10,
      gatewayPeakMiB: Math.round(gwPeak * 10) / 10,
    },
    seconds: (performance.now() - t0) / 1000,
  };
}

await mainIf(import.meta.url, runM1);
