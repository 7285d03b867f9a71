/**
 * K1's docs figures from saved run-all results: a markdown table per file and one plot.
 * Usage: node bench/dist/tools/k1-report.js [--svg OUT.svg] LATEST.json [LATEST-node24.json …]
 * (each file is a bench/results/latest.json of `run-all --only K1 --repeat 3`, e.g. one per Node).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { type K1Set, k1Markdown, k1Plot } from '../lib/k1-report.js';
import type { BenchResult } from '../lib/result.js';

interface Latest {
  readonly started: string;
  readonly commit: string;
  readonly node: string;
  readonly runs: readonly (readonly BenchResult[])[];
}

const args = process.argv.slice(2);
const svgAt = args.indexOf('--svg');
const svgOut = svgAt >= 0 ? args[svgAt + 1] : undefined;
const files = args.filter((_, i) => svgAt < 0 || (i !== svgAt && i !== svgAt + 1));
if (files.length === 0) {
  console.error('usage: k1-report.js [--svg OUT.svg] LATEST.json …');
  process.exit(2);
}
const loaded = files.map((f) => JSON.parse(readFileSync(f, 'utf8')) as Latest);
const sets: K1Set[] = loaded.map((l) => {
  const runs = l.runs.flat().filter((r) => r.id === 'K1');
  // The shim's Node (BENCH_SHIM_NODE) when K1 recorded it, else the bench's own.
  const node = runs[0]?.extra?.shimNode ?? l.node;
  return { label: `shim on Node ${String(node).replace(/^v/, '')}`, runs };
});
for (const s of sets) console.log(`${k1Markdown(s)}\n`);
if (svgOut) {
  const first = loaded[0];
  const caption = `keygate ${first?.commit ?? '?'}, ${first?.started.slice(0, 16) ?? '?'}Z, ${cpus().length} vCPU (shared), medians of ${sets[0]?.runs.length ?? 0} runs; Go load client`;
  writeFileSync(svgOut, k1Plot(sets, caption));
  console.log(`wrote ${svgOut}`);
}
