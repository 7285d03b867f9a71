/** Closed-loop load: N async loops, each awaiting its own call before the next one. */

export interface LoadResult {
  readonly ops: number;
  readonly errors: number;
  readonly seconds: number;
  /** Per-call latencies in ms (successful calls). */
  readonly latencies: Float64Array;
  /** The first error seen, for diagnosis. */
  readonly firstError?: string | undefined;
}

export interface Summary {
  readonly ops: number;
  readonly errors: number;
  readonly throughput: number;
  readonly p50: number;
  readonly p99: number;
}

/**
 * Runs `call` from `concurrency` loops for `durationMs` (or until `maxOps` calls started).
 * `call(i)` gets a running call number, so the caller can pick inputs.
 */
export async function runLoad(
  call: (i: number) => Promise<unknown>,
  concurrency: number,
  durationMs: number,
  maxOps = Number.POSITIVE_INFINITY,
): Promise<LoadResult> {
  const lat: number[] = [];
  let started = 0;
  let errors = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const deadline = t0 + durationMs;
  const loop = async () => {
    while (performance.now() < deadline && started < maxOps) {
      const i = started++;
      const s = performance.now();
      try {
        await call(i);
        lat.push(performance.now() - s);
      } catch (err) {
        errors++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  const seconds = (performance.now() - t0) / 1000;
  return { ops: lat.length, errors, seconds, latencies: Float64Array.from(lat), firstError };
}

/** Merges rounds of the same case. */
export function merge(results: readonly LoadResult[]): LoadResult {
  const total = results.reduce((n, r) => n + r.latencies.length, 0);
  const all = new Float64Array(total);
  let off = 0;
  for (const r of results) {
    all.set(r.latencies, off);
    off += r.latencies.length;
  }
  return {
    ops: results.reduce((n, r) => n + r.ops, 0),
    errors: results.reduce((n, r) => n + r.errors, 0),
    seconds: results.reduce((n, r) => n + r.seconds, 0),
    latencies: all,
    firstError: results.find((r) => r.firstError !== undefined)?.firstError,
  };
}

export function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] ?? Number.NaN;
}

export function summarise(r: LoadResult): Summary {
  const sorted = Float64Array.from(r.latencies).sort();
  return {
    ops: r.ops,
    errors: r.errors,
    throughput: r.seconds > 0 ? r.ops / r.seconds : 0,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
  };
}

export function median(values: readonly number[]): number {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? (v[mid] ?? Number.NaN) : ((v[mid - 1] ?? 0) + (v[mid] ?? 0)) / 2;
}

export interface Case {
  readonly name: string;
  readonly call: (i: number) => Promise<unknown>;
}

export interface Interleaved {
  readonly concurrency: number;
  readonly cases: Record<string, Summary>;
}

/**
 * Runs every case `rounds` times for `roundMs` each, alternating the order every round
 * (A B, B A, A B, …) so that drift and neighbours' noise fall on both alike.
 */
export async function interleave(
  cases: readonly Case[],
  opts: { concurrency: number; rounds: number; roundMs: number },
): Promise<Interleaved> {
  const got = new Map<string, LoadResult[]>(cases.map((c) => [c.name, []]));
  for (let r = 0; r < opts.rounds; r++) {
    const order = r % 2 === 0 ? cases : [...cases].reverse();
    for (const c of order) {
      const res = await runLoad(c.call, opts.concurrency, opts.roundMs);
      got.get(c.name)?.push(res);
      if (res.errors > 0) console.warn(`  ${c.name}: ${res.errors} errors (first: ${res.firstError})`);
    }
  }
  const out: Record<string, Summary> = {};
  for (const [name, list] of got) out[name] = summarise(merge(list));
  return { concurrency: opts.concurrency, cases: out };
}

/** Warm-up: a short sequential phase, then one at `concurrency`. */
export async function warmUp(call: (i: number) => Promise<unknown>, ms: number, concurrency = 16) {
  await runLoad(call, 1, ms / 3);
  await runLoad(call, concurrency, (2 * ms) / 3);
}

export function fmt(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '-';
}

export function line(label: string, s: Summary): string {
  return `${label.padEnd(26)} ${fmt(s.throughput).padStart(7)}/s  p50 ${fmt(s.p50, 2).padStart(6)} ms  p99 ${fmt(s.p99, 2).padStart(7)} ms${s.errors ? `  errors ${s.errors}` : ''}`;
}
