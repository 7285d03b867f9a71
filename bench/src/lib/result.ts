import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Summary } from './measure.js';
import { RESULTS_DIR } from './stack.js';

/** One concurrency level: the measured case against its same-run baseline. */
export interface Point {
  readonly concurrency: number;
  readonly measured: Summary;
  readonly baseline: Summary;
  /** measured / baseline throughput. */
  readonly ratio: number;
  /** measured / baseline p99. */
  readonly p99Ratio: number;
}

export interface BenchResult {
  readonly id: string;
  readonly title: string;
  readonly target: string;
  /** The figure the target is about (a ratio for most, MiB for M1, clients served for G3). */
  readonly value: number;
  readonly unit: string;
  readonly met: boolean;
  readonly points?: readonly Point[];
  readonly extra?: Record<string, number | string | boolean>;
  readonly notes?: readonly string[];
  readonly seconds: number;
}

export function point(concurrency: number, measured: Summary, baseline: Summary): Point {
  return {
    concurrency,
    measured,
    baseline,
    ratio: measured.throughput / baseline.throughput,
    p99Ratio: measured.p99 / baseline.p99,
  };
}

export function saveResult(r: BenchResult): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(join(RESULTS_DIR, `${r.id}.json`), `${JSON.stringify(r, null, 2)}\n`);
}

/** Runs a benchmark's `run` when its file is the entry point; prints and saves the result. */
export async function mainIf(url: string, run: () => Promise<BenchResult>): Promise<void> {
  if (process.argv[1] === undefined || new URL(url).pathname !== process.argv[1]) return;
  const { stopAll } = await import('./procs.js');
  try {
    const r = await run();
    saveResult(r);
    console.log(`${r.id}: ${r.value.toFixed(3)} ${r.unit} -> ${r.met ? 'MET' : 'NOT MET'} (${r.target})`);
  } catch (err) {
    console.error(err);
    process.exitCode = 1;
  } finally {
    await stopAll();
  }
}
