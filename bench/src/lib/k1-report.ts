/**
 * K1 in the docs: the markdown table of docs/benchmarks.md "K1: the shim against a Go KMS plugin"
 * and its plot (docs/benchmarks-k1.svg), as medians over the runs of one or more run-all
 * invocations (one per Node version; each run's figures are in its BenchResult.extra).
 */
import { fmt, median } from './measure.js';
import type { BenchResult } from './result.js';
import { type ChartSpec, type Series, svgDocument } from './svg.js';

export interface K1Set {
  /** e.g. "Node v20.20.2". */
  readonly label: string;
  readonly runs: readonly BenchResult[];
}

export const K1_POINTS = [1, 16, 64] as const;

export function k1Median(set: K1Set, key: string): number {
  return median(set.runs.map((r) => r.extra?.[key]).filter((v): v is number => typeof v === 'number'));
}

const spread = (set: K1Set, key: string, digits: number) =>
  set.runs
    .map((r) => r.extra?.[key])
    .map((v) => (typeof v === 'number' ? fmt(v, digits) : '-'))
    .join(', ');

/** One table per set: keygate vs the peer, medians of the runs (each run's value in brackets). */
export function k1Markdown(set: K1Set): string {
  const m = (k: string) => k1Median(set, k);
  const row = (what: string, shim: string, peer: string, ratio: string) =>
    `| ${what} | ${shim} | ${peer} | ${ratio} |`;
  const out = [
    `${set.label}, median of ${set.runs.length} run(s) (each run's ratio in brackets):`,
    '',
    '| | keygate shim | Go peer | shim / peer |',
    '|---|---|---|---|',
  ];
  for (const c of K1_POINTS) {
    out.push(
      row(
        `v2 round trips/s, c = ${c}`,
        fmt(m(`shimPerSecC${c}`)),
        fmt(m(`peerPerSecC${c}`)),
        `**${fmt(m(`ratioC${c}`), 2)}x** (${spread(set, `ratioC${c}`, 2)})`,
      ),
    );
  }
  for (const c of [16, 64]) {
    out.push(
      row(
        `p99 ms, c = ${c}`,
        fmt(m(`shimP99C${c}`), 1),
        fmt(m(`peerP99C${c}`), 1),
        `${fmt(m(`shimP99C${c}`) / m(`peerP99C${c}`), 1)}x`,
      ),
    );
  }
  out.push(
    row(
      'peak RSS under load, MiB',
      `${fmt(m('shimPeakRssMiB'))} (+ gateway ${fmt(m('gatewayPeakRssMiB'))})`,
      fmt(m('peerPeakRssMiB')),
      `${fmt(m('shimPeakRssMiB') / m('peerPeakRssMiB'), 1)}x (shim alone)`,
    ),
    row(
      'restart → first Decrypt of existing data, ms',
      `${fmt(m('restartShimMs'))} (${spread(set, 'restartShimMs', 0)})`,
      `${fmt(m('restartPeerMs'))} (${spread(set, 'restartPeerMs', 0)})`,
      `${fmt(m('restartShimMs') / m('restartPeerMs'), 0)}x`,
    ),
  );
  for (const c of [16, 64]) {
    out.push(
      row(
        `per-request mode (\`NEW_DEK=true\`, \`CACHE_SIZE=0\`) round trips/s, c = ${c}`,
        fmt(m(`perRequestPerSecC${c}`)),
        '(the peer above)',
        `**${fmt(m(`perRequestRatioC${c}`), 3)}x** (${spread(set, `perRequestRatioC${c}`, 3)})`,
      ),
    );
  }
  return out.join('\n');
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c'];

/** Round trips/s and p99 against concurrency: the shim (per set) and the peer (per set, dashed). */
export function k1Plot(sets: readonly K1Set[], caption: string): string {
  const chart = (metric: 'PerSec' | 'P99', title: string, yLabel: string): ChartSpec => ({
    title,
    xLabel: 'concurrent callers',
    yLabel,
    series: sets.flatMap((s, i): Series[] => {
      const pts = (who: string) =>
        K1_POINTS.map((c): [number, number] => [c, k1Median(s, `${who}${metric}C${c}`)]);
      const color = COLORS[i % COLORS.length] ?? '#1f77b4';
      return [
        { name: `shim, ${s.label}`, color, dashed: false, points: pts('shim') },
        { name: `Go peer (${s.label} run)`, color, dashed: true, points: pts('peer') },
      ];
    }),
  });
  return svgDocument(
    [
      chart('PerSec', 'K1 v2 Encrypt+Decrypt round trips', 'round trips/s'),
      chart('P99', 'K1 round trip p99', 'p99 ms'),
    ],
    2,
    caption,
  );
}
