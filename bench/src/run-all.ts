/**
 * Runs every benchmark (S1-S4, G1-G3, M1, H1, A1, K1), each against its same-run baseline, and writes
 * bench/results/latest.json and bench/results/concurrency.svg. Options:
 *   --repeat N   run the whole suite N times (interleaved suites) and report medians
 *   --only S1,G1 run only these
 *   --docs       also write docs/benchmarks-concurrency.svg (with S1 and G1) and
 *                docs/benchmarks-replicas.svg (with H1), and print the markdown table
 * Env: BENCH_QUICK=1 (short smoke run), BENCH_ROUND_MS, BENCH_ROUNDS, BENCH_WARM_MS.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { runA1 } from './a1.bench.js';
import { runG1 } from './g1.bench.js';
import { runG2 } from './g2.bench.js';
import { runG3 } from './g3.bench.js';
import { runH1 } from './h1.bench.js';
import { runK1 } from './k1.bench.js';
import { median } from './lib/measure.js';
import { stopAll } from './lib/procs.js';
import { replicasMarkdown, replicasPlot } from './lib/replicas-report.js';
import { type BenchResult, saveResult } from './lib/result.js';
import { REPO_ROOT, RESULTS_DIR, timing } from './lib/stack.js';
import { type ChartSpec, svgDocument } from './lib/svg.js';
import { runM1 } from './m1.bench.js';
import { runS1 } from './s1.bench.js';
import { runS2 } from './s2.bench.js';
import { runS3 } from './s3.bench.js';
import { runS4 } from './s4.bench.js';

const ALL: Record<string, () => Promise<BenchResult>> = {
  S1: runS1,
  S2: runS2,
  S3: runS3,
  S4: runS4,
  G1: runG1,
  G2: runG2,
  G3: runG3,
  M1: runM1,
  H1: runH1,
  A1: runA1,
  K1: runK1,
};

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

interface Row {
  readonly id: string;
  readonly title: string;
  readonly target: string;
  readonly unit: string;
  readonly values: number[];
  readonly median: number;
  readonly metRuns: number;
  readonly runs: number;
  readonly extra: Record<string, string>;
}

function rows(runs: readonly (readonly BenchResult[])[]): Row[] {
  const ids = [...new Set(runs.flat().map((r) => r.id))];
  return ids.map((id) => {
    const list = runs.flat().filter((r) => r.id === id);
    const first = list[0];
    if (!first) throw new Error(id);
    const extra: Record<string, string> = {};
    for (const k of Object.keys(first.extra ?? {})) {
      const vals = list.map((r) => r.extra?.[k]);
      const nums = vals.filter((v): v is number => typeof v === 'number');
      extra[k] =
        nums.length === vals.length ? String(Math.round(median(nums) * 1000) / 1000) : vals.join(' / ');
    }
    return {
      id,
      title: first.title,
      target: first.target,
      unit: first.unit,
      values: list.map((r) => r.value),
      median: median(list.map((r) => r.value)),
      metRuns: list.filter((r) => r.met).length,
      runs: list.length,
      extra,
    };
  });
}

/** Median throughput / p99 per concurrency over the runs, for one benchmark's points. */
function curve(
  runs: readonly (readonly BenchResult[])[],
  id: string,
  side: 'measured' | 'baseline',
  metric: 'throughput' | 'p99',
): Array<[number, number]> {
  const pts = runs
    .flat()
    .filter((r) => r.id === id)
    .flatMap((r) => r.points ?? []);
  const cs = [...new Set(pts.map((p) => p.concurrency))].sort((a, b) => a - b);
  return cs.map((c) => [c, median(pts.filter((p) => p.concurrency === c).map((p) => p[side][metric]))]);
}

/** The plotted benchmarks: what they measure, against which baseline, in which colour. */
const PLOTTED = [
  {
    id: 'S1',
    title: 'S1 shim v2 Decrypt (cached)',
    unit: 'calls/s',
    name: 'shim',
    base: 'grpc-js echo',
    color: '#1f77b4',
  },
  {
    id: 'G1',
    title: 'G1 gateway unwrap',
    unit: 'requests/s',
    name: 'gateway',
    base: 'https mTLS echo',
    color: '#d62728',
  },
] as const;

function plot(runs: readonly (readonly BenchResult[])[], caption: string): string {
  const charts: ChartSpec[] = PLOTTED.flatMap((b) =>
    (['throughput', 'p99'] as const).map(
      (metric): ChartSpec => ({
        title: `${b.title}: ${metric}`,
        xLabel: 'concurrent callers',
        yLabel: metric === 'p99' ? 'p99 ms' : b.unit,
        series: [
          { name: b.name, color: b.color, dashed: false, points: curve(runs, b.id, 'measured', metric) },
          { name: b.base, color: '#999', dashed: true, points: curve(runs, b.id, 'baseline', metric) },
        ],
      }),
    ),
  );
  return svgDocument(charts, 2, caption);
}

function markdown(table: readonly Row[]): string {
  const out = ['| id | what | target | measured (median) | runs | met |', '|---|---|---|---|---|---|'];
  for (const r of table) {
    const v = r.unit.startsWith('x') || r.unit === 'share served' ? r.median.toFixed(2) : r.median.toFixed(1);
    out.push(
      `| ${r.id} | ${r.title} | ${r.target} | **${v}** ${r.unit} (${r.values.map((x) => x.toFixed(2)).join(', ')}) | ${r.runs} | ${r.metRuns === r.runs ? 'yes' : r.metRuns === 0 ? 'no' : `${r.metRuns}/${r.runs}`} |`,
    );
  }
  return out.join('\n');
}

async function main(): Promise<void> {
  const repeat = Number(arg('--repeat') ?? process.env.BENCH_REPEAT ?? 1);
  const only = (arg('--only') ?? Object.keys(ALL).join(',')).split(',');
  const started = new Date();
  const t0 = performance.now();
  const runs: BenchResult[][] = [];
  let head = '';
  try {
    head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  } catch {
    head = 'unknown';
  }
  try {
    for (let i = 0; i < repeat; i++) {
      const run: BenchResult[] = [];
      for (const id of only) {
        const fn = ALL[id];
        if (!fn) throw new Error(`unknown benchmark ${id}`);
        console.log(`\n=== ${id} (run ${i + 1}/${repeat})`);
        const r = await fn();
        saveResult(r);
        run.push(r);
        console.log(
          `${r.id}: ${r.value.toFixed(3)} ${r.unit} -> ${r.met ? 'MET' : 'NOT MET'} (${r.seconds.toFixed(0)} s)`,
        );
      }
      runs.push(run);
    }
  } finally {
    await stopAll();
  }
  const table = rows(runs);
  const caption = `keygate ${head}, ${started.toISOString().slice(0, 16)}Z, ${cpus().length} vCPU, node ${process.version}; median of ${repeat} run(s), ${timing().rounds} interleaved rounds of ${timing().roundMs} ms per point`;
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(
    join(RESULTS_DIR, 'latest.json'),
    `${JSON.stringify({ started: started.toISOString(), commit: head, node: process.version, cpus: cpus().length, timing: timing(), seconds: (performance.now() - t0) / 1000, table, runs }, null, 2)}\n`,
  );
  const svg = only.includes('S1') && only.includes('G1') ? plot(runs, caption) : undefined;
  if (svg) writeFileSync(join(RESULTS_DIR, 'concurrency.svg'), svg);
  console.log(`\n${markdown(table)}\n`);
  for (const r of table) if (Object.keys(r.extra).length) console.log(`${r.id}: ${JSON.stringify(r.extra)}`);
  if (process.argv.includes('--docs') && svg) {
    writeFileSync(join(REPO_ROOT, 'docs/benchmarks-concurrency.svg'), svg);
    console.log('wrote docs/benchmarks-concurrency.svg');
  }
  // H1/A1: replicas on PostgreSQL (docs/benchmarks.md "H1 and A1: replicas on PostgreSQL").
  const replicas = replicasPlot(runs, caption);
  if (replicas) {
    writeFileSync(join(RESULTS_DIR, 'replicas.svg'), replicas);
    if (process.argv.includes('--docs')) {
      writeFileSync(join(REPO_ROOT, 'docs/benchmarks-replicas.svg'), replicas);
      console.log('wrote docs/benchmarks-replicas.svg');
    }
  }
  if (only.includes('H1') || only.includes('A1')) console.log(`\n${replicasMarkdown(runs)}\n`);
  console.log(
    `total ${((performance.now() - t0) / 1000).toFixed(0)} s; results in bench/results/latest.json`,
  );
}

await main();
