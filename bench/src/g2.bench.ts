/**
 * G2: gateway unwrap with a simulated network HSM (hsm.simulatedLatencyMs = 1: every HSM call holds
 * one of `sessions` channels for at least 1 ms; SoftHSM2 still does the crypto underneath). The
 * bound is sessions / 1 ms. Target: >= 0.80x of that bound at 16 and 64 concurrent. The session
 * count is chosen below the gateway's own CPU ceiling (G1), so that the figure shows whether the
 * gateway overlaps HSM waits, not its CPU limit again: BENCH_G2_SESSIONS (default 1).
 */
import { fmt, line, median, runLoad, summarise, warmUp } from './lib/measure.js';
import { type BenchResult, mainIf, type Point } from './lib/result.js';
import {
  gatewayUnwrapFixture,
  MtlsClient,
  prepare,
  stackTls,
  startGateway,
  timing,
  unwrapCall,
} from './lib/stack.js';

export async function runG2(): Promise<BenchResult> {
  const t0 = performance.now();
  const t = timing();
  const sessions = Number(process.env.BENCH_G2_SESSIONS ?? 1);
  const latencyMs = 1;
  const bound = (sessions * 1000) / latencyMs;
  const p = await prepare();
  const tls = stackTls(p);
  const gw = await startGateway(p, { name: 'g2', sessions, simulatedLatencyMs: latencyMs });
  const fixture = await gatewayUnwrapFixture(p, gw.url);
  console.log(
    `G2 gateway unwrap, simulated HSM ${latencyMs} ms per call, ${sessions} sessions: bound ${bound}/s`,
  );
  const points: Point[] = [];
  for (const c of [16, 64]) {
    const client = new MtlsClient(gw.url, tls, c);
    const call = unwrapCall(client, fixture);
    await warmUp(call, t.warmMs / 2, c);
    const rounds = [];
    for (let r = 0; r < t.rounds; r++) rounds.push(summarise(await runLoad(call, c, t.roundMs)));
    const m = rounds.reduce((a, b) => (a.throughput >= b.throughput ? a : b));
    const tp = median(rounds.map((x) => x.throughput));
    const measured = { ...m, throughput: tp };
    const baseline = { ops: 0, errors: 0, throughput: bound, p50: latencyMs, p99: latencyMs };
    points.push({
      concurrency: c,
      measured,
      baseline,
      ratio: tp / bound,
      p99Ratio: measured.p99 / latencyMs,
    });
    console.log(`  c=${c}: ${line('gateway unwrap', measured)}  ratio to bound ${fmt(tp / bound, 3)}`);
    await client.close();
  }
  await gw.proc.stop();
  const ratio = Math.min(...points.map((x) => x.ratio));
  return {
    id: 'G2',
    title: `gateway unwrap, simulated network HSM (1 ms per call, ${sessions} session${sessions > 1 ? 's' : ''})`,
    target: '>= 0.80x of sessions / 1 ms',
    value: ratio,
    unit: 'x bound (worst of 16/64)',
    met: ratio >= 0.8,
    points,
    extra: { sessions, boundPerSecond: bound },
    seconds: (performance.now() - t0) / 1000,
  };
}

await mainIf(import.meta.url, runG2);
