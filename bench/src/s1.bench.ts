/**
 * S1: shim v2 Decrypt with the DEK cached, against a grpc-js echo with the same proto and message
 * sizes, interleaved, at 1, 4, 16 and 64 concurrent. Target at 16 and 64: >= 0.85x throughput,
 * p99 <= 1.5x.
 */
import { KmsClient } from '@keygate/shim';
import { startGrpcEcho } from './lib/baselines.js';
import { fmt, interleave, line, warmUp } from './lib/measure.js';
import { rssSampler } from './lib/procs.js';
import { type BenchResult, mainIf, type Point, point } from './lib/result.js';
import { prepare, startGateway, startShim, timing } from './lib/stack.js';

export const S1_CONCURRENCY = [1, 4, 16, 64];

export async function runS1(): Promise<BenchResult> {
  const t0 = performance.now();
  const t = timing();
  const p = await prepare();
  const gw = await startGateway(p, { name: 's1' });
  const shim = await startShim(p, { name: 's1', gatewayUrl: gw.url });
  const kms = new KmsClient(shim.socket);
  const seed = Buffer.alloc(32, 1);
  const enc = await kms.encrypt(seed, 'bench');
  const echo = await startGrpcEcho('s1', {
    plainBytes: seed.length,
    cipherBytes: enc.ciphertext.length,
    keyId: enc.key_id,
  });
  const base = new KmsClient(echo.socket);
  const shimCall = () => kms.decrypt(enc.ciphertext, enc.key_id, 'bench');
  const echoCall = () => base.decrypt(enc.ciphertext, enc.key_id, 'bench');
  console.log(`S1 shim v2 Decrypt (cached DEK), ciphertext ${enc.ciphertext.length} B`);
  await warmUp(shimCall, t.warmMs);
  await warmUp(echoCall, t.warmMs);
  const rss = rssSampler([shim.proc]);
  const points: Point[] = [];
  for (const c of S1_CONCURRENCY) {
    const r = await interleave(
      [
        { name: 'shim', call: shimCall },
        { name: 'echo', call: echoCall },
      ],
      { concurrency: c, rounds: t.rounds, roundMs: t.roundMs },
    );
    const m = r.cases.shim;
    const b = r.cases.echo;
    if (!m || !b) throw new Error('missing case');
    const pt = point(c, m, b);
    points.push(pt);
    console.log(`  c=${c}`);
    console.log(`    ${line('shim', m)}`);
    console.log(`    ${line('grpc echo', b)}`);
    console.log(`    ratio ${fmt(pt.ratio, 3)}  p99 ratio ${fmt(pt.p99Ratio, 2)}`);
  }
  const peak = rss.stop();
  kms.close();
  base.close();
  await shim.proc.stop();
  await echo.proc.stop();
  await gw.proc.stop();
  const judged = points.filter((x) => x.concurrency >= 16);
  const ratio = Math.min(...judged.map((x) => x.ratio));
  const p99 = Math.max(...judged.map((x) => x.p99Ratio));
  return {
    id: 'S1',
    title: 'shim v2 Decrypt, DEK cached',
    target: '>= 0.85x echo throughput and p99 <= 1.5x at 16 and 64 concurrent',
    value: ratio,
    unit: 'x echo (worst of 16/64)',
    met: ratio >= 0.85 && p99 <= 1.5,
    points,
    extra: { worstP99Ratio: p99, shimPeakRssMiB: peak[shim.proc.name] ?? Number.NaN },
    seconds: (performance.now() - t0) / 1000,
  };
}

await mainIf(import.meta.url, runS1);
