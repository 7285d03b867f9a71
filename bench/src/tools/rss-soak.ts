/**
 * The shim's RSS under sustained K1-like load (issue 21, "Stay small"; docs/benchmarks.md, "Issue
 * 21: start and memory"): v2 Encrypt+Decrypt round trips at BENCH_SOAK_C concurrent (default 16)
 * from the Go load client (its own process, so the load generator's memory is not counted), the
 * shim's VmRSS from /proc every second. Per case: round trips/s, RSS median of the first and the
 * last tenth, peak, and the slope of a least-squares line through the second half of the samples
 * (MiB per minute: growth, if any, once the heap has settled).
 *
 *   node bench/dist/tools/rss-soak.js                                   # 60 s, the shipped NODE_OPTIONS
 *   BENCH_SOAK_S=600 node bench/dist/tools/rss-soak.js                  # the 10-minute run
 *   BENCH_SOAK_OPTIONS='--max-old-space-size=96 --max-semi-space-size=16|--max-semi-space-size=1' …
 *   BENCH_SHIM_NODE=~/.cache/keygate-node/node-v24.22.3/bin/node …     # the shim on another Node
 *   BENCH_SOAK_ROUNDS=3 …   # each case this many times, in alternating order (throughput ratios)
 *
 * Cases ('|'-separated NODE_OPTIONS; words like MALLOC_ARENA_MAX=2 in a case are set in the shim's
 * environment instead) run one after the other against one gateway; each sample is written to
 * bench/.work/rss-soak-<case>.csv (seconds, MiB). The last line of each case also gives RssAnon
 * (heap, stacks, malloc) apart from the mapped files (mostly the node binary).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SHIPPED_NODE_OPTIONS } from '../k1.bench.js';
import { goSide } from '../lib/k1-clients.js';
import { fmt, median } from '../lib/measure.js';
import { peerBinary } from '../lib/peer.js';
import { runTool } from '../lib/procs.js';
import { BENCH_HOME, prepare, startGateway, startShim } from '../lib/stack.js';

/** Least-squares slope of y over x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return Number.NaN;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < n; i++) {
    sx += xs[i] ?? 0;
    sy += ys[i] ?? 0;
  }
  const mx = sx / n;
  const my = sy / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    const dx = (xs[i] ?? 0) - mx;
    num += dx * ((ys[i] ?? 0) - my);
    den += dx * dx;
  }
  return den === 0 ? Number.NaN : num / den;
}

/** RssAnon of `pid` in MiB (anonymous memory: V8 heap, malloc, stacks). */
function anonMiB(pid: number): number {
  const m = /RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m?.[1] ? Number(m[1]) / 1024 : Number.NaN;
}

/** The shim's V8 heap (used, total) in MiB from its /metrics (NaN when it does not answer). */
async function heapMiB(port: number): Promise<{ used: number; total: number }> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const get = (name: string) =>
      Number(new RegExp(`^keygate_${name}\\{[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1]) / 2 ** 20;
    return { used: get('nodejs_heap_size_used_bytes'), total: get('nodejs_heap_size_total_bytes') };
  } catch {
    return { used: Number.NaN, total: Number.NaN };
  }
}

/** A case's words: NAME=value ones go to the environment, the rest to NODE_OPTIONS. */
function splitCase(words: string): { nodeOptions: string; env: Record<string, string> } {
  const env: Record<string, string> = {};
  const opts: string[] = [];
  for (const w of words.split(/\s+/).filter(Boolean)) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(w);
    if (m?.[1] !== undefined) env[m[1]] = m[2] ?? '';
    else opts.push(w);
  }
  return { nodeOptions: opts.join(' '), env };
}

async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SOAK_S ?? 60);
  const c = Number(process.env.BENCH_SOAK_C ?? 16);
  const shimNode = process.env.BENCH_SHIM_NODE;
  const rounds = Number(process.env.BENCH_SOAK_ROUNDS ?? 1);
  const cases = (process.env.BENCH_SOAK_OPTIONS ?? SHIPPED_NODE_OPTIONS).split('|').map((s) => s.trim());
  const bin = peerBinary();
  const p = await prepare();
  const gw = await startGateway(p, { name: 'soak' });
  console.log(
    `rss-soak: shim on ${shimNode ?? `Node ${process.version}`}, ${rounds} x ${seconds} s per case, c=${c}`,
  );
  const shims = [];
  for (const [i, words] of cases.entries()) {
    const { nodeOptions, env } = splitCase(words);
    const shim = await startShim(p, {
      name: `soak-${i}`,
      gatewayUrl: gw.url,
      newDek: false,
      nodeOptions,
      env,
      ...(shimNode ? { node: shimNode } : {}),
    });
    const side = goSide(`soak-${i}`, bin.loadPath, shim.socket);
    await side.run(c, 2000); // warm-up: the first DEK, JIT, the young generation filled once
    const heap0 = await heapMiB(shim.healthPort);
    shims.push({
      i,
      words,
      shim,
      side,
      heap0,
      t: [] as number[],
      rss: [] as number[],
      rate: [] as number[],
      errors: 0,
    });
  }
  // Rounds alternate the order of the cases (A B, B A, …): drift on the shared machine falls on all.
  for (let r = 0; r < rounds; r++) {
    for (const k of r % 2 === 0 ? shims : [...shims].reverse()) {
      const base = k.t.length > 0 ? (k.t.at(-1) ?? 0) : 0;
      const t0 = performance.now();
      const timer = setInterval(() => {
        k.t.push(base + (performance.now() - t0) / 1000);
        k.rss.push(k.shim.proc.rssMiB());
      }, 1000);
      const { res } = await k.side.run(c, seconds * 1000);
      clearInterval(timer);
      k.rate.push(res.ops / res.seconds);
      k.errors += res.errors;
    }
  }
  for (const k of shims) {
    const { t, rss } = k;
    const anon = anonMiB(k.shim.proc.pid);
    const heap1 = await heapMiB(k.shim.healthPort);
    await k.shim.proc.stop();
    const tenth = Math.max(1, Math.floor(rss.length / 10));
    const half = Math.floor(rss.length / 2);
    const perMin = slope(t.slice(half), rss.slice(half)) * 60;
    writeFileSync(
      join(BENCH_HOME, `rss-soak-${k.i}.csv`),
      `seconds,rss_mib\n${t.map((x, n) => `${x.toFixed(1)},${(rss[n] ?? 0).toFixed(1)}`).join('\n')}\n`,
    );
    console.log(
      `  "${k.words}": ${fmt(median(k.rate))} rt/s median (${k.rate.map((x) => fmt(x)).join(', ')}; ${k.errors} errors); RSS first ${fmt(median(rss.slice(0, tenth)), 1)}, last ${fmt(median(rss.slice(-tenth)), 1)}, peak ${fmt(Math.max(...rss), 1)} MiB; second-half slope ${fmt(perMin, 2)} MiB/min; RssAnon at the end ${fmt(anon, 1)} MiB; V8 heap used/total after the warm-up ${fmt(k.heap0.used, 1)}/${fmt(k.heap0.total, 1)}, at the end ${fmt(heap1.used, 1)}/${fmt(heap1.total, 1)} MiB`,
    );
  }
  await gw.proc.stop();
}

void runTool(main);
