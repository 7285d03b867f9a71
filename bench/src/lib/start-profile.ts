/**
 * K1's start profile of the shim: from spawn to the first Decrypt of existing data, the time at
 * which each step was done, read from the start probe's lines (tools/start-probe.ts), the shim's
 * own log lines and the bench's clock. Pure: parses log text, no I/O.
 */

export const START_STEPS = [
  'node bootstrap',
  'modules loaded',
  'config loaded',
  'first token',
  'key version',
  'socket ready',
  'first Decrypt',
] as const;

export type StartStep = (typeof START_STEPS)[number];

export interface StartStepTime {
  readonly step: StartStep;
  /** ms after spawn at which the step was done (NaN when its line was not found). */
  readonly atMs: number;
  /** ms since the previous step found. */
  readonly deltaMs: number;
  /** What marks the step. */
  readonly mark: string;
}

interface LogLine {
  readonly msg?: unknown;
  readonly probe?: unknown;
  readonly path?: unknown;
  readonly t?: unknown;
  readonly ts?: unknown;
  readonly time?: unknown;
}

/** A log line's epoch ms: the probe's `t`, the shim's ISO `ts`, or a numeric `time`. */
function epochMs(l: LogLine): number {
  if (typeof l.t === 'number') return l.t;
  if (typeof l.ts === 'string') return Date.parse(l.ts);
  if (typeof l.time === 'number') return l.time;
  return Number.NaN;
}

function parseLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const raw of text.split('\n')) {
    const s = raw.trim();
    if (!s.startsWith('{')) continue;
    try {
      out.push(JSON.parse(s) as LogLine);
    } catch {
      // not a JSON line (a stack trace, say)
    }
  }
  return out;
}

const MARKS: Record<Exclude<StartStep, 'first Decrypt'>, { mark: string; test: (l: LogLine) => boolean }> = {
  'node bootstrap': { mark: 'probe: node ready', test: (l) => l.probe === 'node ready' },
  'modules loaded': { mark: 'probe: first read of --config', test: (l) => l.probe === 'config read' },
  'config loaded': {
    mark: 'probe: first gateway request created (token)',
    test: (l) => l.probe === 'request',
  },
  'first token': {
    mark: 'probe: /identity/token response',
    test: (l) => l.probe === 'response' && l.path === '/identity/token',
  },
  'key version': { mark: "log: 'key_id changed'", test: (l) => l.msg === 'key_id changed' },
  'socket ready': {
    mark: "log: 'KMS provider server started'",
    test: (l) => l.msg === 'KMS provider server started',
  },
};

/**
 * The profile of one start: `spawnedAt` and `firstDecryptAt` are the bench's epoch ms (spawn()
 * called; first Decrypt answered), `log` the shim's log file text.
 */
export function startProfile(spawnedAt: number, firstDecryptAt: number, log: string): StartStepTime[] {
  const lines = parseLines(log);
  const out: StartStepTime[] = [];
  let prev = 0;
  for (const step of START_STEPS) {
    let at: number;
    let mark: string;
    if (step === 'first Decrypt') {
      at = firstDecryptAt - spawnedAt;
      mark = 'bench: Decrypt answered';
    } else {
      const m = MARKS[step];
      const hit = lines.find(m.test);
      at = hit ? epochMs(hit) - spawnedAt : Number.NaN;
      mark = m.mark;
    }
    out.push({ step, atMs: at, deltaMs: Number.isFinite(at) ? at - prev : Number.NaN, mark });
    if (Number.isFinite(at)) prev = at;
  }
  return out;
}

/** Medians per step over several starts. */
export function medianProfile(runs: readonly (readonly StartStepTime[])[]): StartStepTime[] {
  const med = (xs: number[]) => {
    const v = xs.filter(Number.isFinite).sort((a, b) => a - b);
    if (v.length === 0) return Number.NaN;
    const mid = Math.floor(v.length / 2);
    return v.length % 2 ? (v[mid] ?? Number.NaN) : ((v[mid - 1] ?? 0) + (v[mid] ?? 0)) / 2;
  };
  let prev = 0;
  return START_STEPS.map((step) => {
    const at = med(runs.map((r) => r.find((s) => s.step === step)?.atMs ?? Number.NaN));
    const mark = runs[0]?.find((s) => s.step === step)?.mark ?? '';
    const delta = Number.isFinite(at) ? at - prev : Number.NaN;
    if (Number.isFinite(at)) prev = at;
    return { step, atMs: at, deltaMs: delta, mark };
  });
}

export function formatProfile(p: readonly StartStepTime[]): string {
  return p
    .map(
      (s) =>
        `    ${s.step.padEnd(16)} ${Number.isFinite(s.atMs) ? s.atMs.toFixed(1).padStart(7) : '      -'} ms  (+${Number.isFinite(s.deltaMs) ? s.deltaMs.toFixed(1) : '-'})  ${s.mark}`,
    )
    .join('\n');
}
