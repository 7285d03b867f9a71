const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses "250ms", "30s", "5m", "2h", "7d" (or a bare number of milliseconds) to milliseconds. */
export function parseDuration(text: string | number): number {
  if (typeof text === 'number') {
    if (!Number.isFinite(text) || text < 0) throw new RangeError('duration must be a non-negative number');
    return text;
  }
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new RangeError('duration must look like 250ms, 30s, 5m, 2h or 7d');
  return Math.round(Number(m[1]) * (UNITS[m[2] ?? 'ms'] as number));
}

/** Milliseconds as the largest unit that divides them ("1m", "90d", "1500ms"): config messages. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = UNITS[unit] as number;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
