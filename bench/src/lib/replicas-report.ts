/**
 * H1 and A1 in the docs: the plot (docs/benchmarks-replicas.svg) and the markdown tables of
 * docs/benchmarks.md "H1 and A1: replicas on PostgreSQL", as medians over the runs of one
 * `run-all` invocation (each run's figures are in its BenchResult.extra).
 */
import { A1_CONCURRENCY } from '../a1.bench.js';
import { H1_CASES, H1_CONCURRENCY, H1_LABELS } from '../h1.bench.js';
import { fmt, median } from './measure.js';
import type { BenchResult } from './result.js';
import { type ChartSpec, svgDocument } from './svg.js';

const COLORS = { file: '#999', pg1: '#1f77b4', pg3: '#d62728', pg3f: '#2ca02c' } as const;

/** Median over the runs of one extra figure of benchmark `id`. */
function med(runs: readonly (readonly BenchResult[])[], id: string, key: string): number {
  const vals = runs
    .flat()
    .filter((r) => r.id === id)
    .map((r) => r.extra?.[key])
    .filter((v): v is number => typeof v === 'number');
  return median(vals);
}

function has(runs: readonly (readonly BenchResult[])[], id: string): boolean {
  return runs.flat().some((r) => r.id === id);
}

export function replicasPlot(runs: readonly (readonly BenchResult[])[], caption: string): string | undefined {
  if (!has(runs, 'H1')) return undefined;
  const h1 = (metric: 'RoundTrips' | 'P99ms', title: string, yLabel: string): ChartSpec => ({
    title,
    xLabel: 'concurrent callers',
    yLabel,
    series: H1_CASES.map((k) => ({
      name: H1_LABELS[k],
      color: COLORS[k],
      dashed: k === 'file',
      points: H1_CONCURRENCY.map((c): [number, number] => [c, med(runs, 'H1', `${k}${metric}${c}`)]),
    })),
  });
  const charts: ChartSpec[] = [
    h1('RoundTrips', 'H1 wrap+unwrap round trips: throughput', 'round trips/s'),
    h1('P99ms', 'H1 wrap+unwrap round trips: p99', 'p99 ms'),
  ];
  if (has(runs, 'A1')) {
    charts.push({
      title: 'A1 audit appends (durable)',
      xLabel: 'concurrent appenders',
      yLabel: 'records/s',
      series: [
        {
          name: 'PostgreSQL chain (group commit)',
          color: '#1f77b4',
          points: A1_CONCURRENCY.map((c): [number, number] => [c, med(runs, 'A1', `pgRecords${c}`)]),
        },
        {
          name: 'file log (O_DSYNC, group commit)',
          color: '#999',
          dashed: true,
          points: A1_CONCURRENCY.map((c): [number, number] => [c, med(runs, 'A1', `fileRecords${c}`)]),
        },
      ],
    });
  }
  return svgDocument(charts, charts.length, caption);
}

/** The markdown tables (medians over the runs; ratios are medians of each run's own ratio). */
export function replicasMarkdown(runs: readonly (readonly BenchResult[])[]): string {
  const out: string[] = [];
  if (has(runs, 'H1')) {
    out.push(
      '| concurrency | case | round trips/s | p50 ms | p99 ms | throughput vs (a) | p99 vs (a) | SQL statements per round trip | audit transactions per round trip | audit records per transaction |',
      '|---|---|---|---|---|---|---|---|---|---|',
    );
    for (const c of H1_CONCURRENCY) {
      for (const k of H1_CASES) {
        const ratio = k === 'file' ? '1' : fmt(med(runs, 'H1', `${k}Ratio${c}`), 2);
        const p99 = k === 'file' ? '1' : fmt(med(runs, 'H1', `${k}P99Ratio${c}`), 2);
        out.push(
          `| ${c} | ${H1_LABELS[k]} | ${fmt(med(runs, 'H1', `${k}RoundTrips${c}`))} | ${fmt(med(runs, 'H1', `${k}P50ms${c}`), 1)} | ${fmt(med(runs, 'H1', `${k}P99ms${c}`), 1)} | **${ratio}x** | ${p99}x | ${k === 'file' ? '-' : fmt(med(runs, 'H1', `${k}StatementsPerRoundTrip${c}`), 2)} | ${k === 'file' ? '-' : fmt(med(runs, 'H1', `${k}AuditTxPerRoundTrip${c}`), 2)} | ${fmt(med(runs, 'H1', `${k}RecordsPerAuditTx${c}`), 1)} |`,
        );
      }
    }
    out.push('');
  }
  if (has(runs, 'A1')) {
    out.push(
      '| appenders | PostgreSQL records/s | file records/s | PostgreSQL / file | records per PostgreSQL transaction | records per file write |',
      '|---|---|---|---|---|---|',
    );
    for (const c of A1_CONCURRENCY) {
      out.push(
        `| ${c} | ${fmt(med(runs, 'A1', `pgRecords${c}`))} | ${fmt(med(runs, 'A1', `fileRecords${c}`))} | **${fmt(med(runs, 'A1', `ratio${c}`), 2)}x** | ${fmt(med(runs, 'A1', `pgBatch${c}`), 1)} | ${fmt(med(runs, 'A1', `fileBatch${c}`), 1)} |`,
      );
    }
  }
  return out.join('\n');
}
