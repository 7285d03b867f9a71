import { setTimeout as sleep } from 'node:timers/promises';

/** Test support: steady load while a fault is injected, and polling for a condition. */

/** Resolves once `cond` holds; rejects naming `what` after `timeoutMs` (generous: CI machines are slow). */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const until = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > until) throw new Error(`timed out waiting for: ${what}`);
    await sleep(10);
  }
}

export interface Load {
  /** Outcomes so far: `ok` or an error code, with their counts. */
  readonly counts: ReadonlyMap<string, number>;
  /** performance.now() of the first success that started at or after `t`, if any yet. */
  firstOkStartedAfter(t: number): number | undefined;
  /** Stops the loops and waits for the calls in flight. */
  stop(): Promise<void>;
}

/**
 * Runs `op` in `workers` loops until stop(). `op` resolves to `ok` or to the error code it got;
 * after a failure a loop waits `pauseMs`, as a client backing off would (and so that a fault
 * answered at once does not starve the event loop).
 */
export function startLoad(op: () => Promise<string>, workers: number, pauseMs = 20): Load {
  const counts = new Map<string, number>();
  const oks: { started: number; at: number }[] = [];
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      const started = performance.now();
      const outcome = await op();
      counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
      if (outcome === 'ok') oks.push({ started, at: performance.now() });
      await sleep(outcome === 'ok' ? 0 : pauseMs);
    }
  };
  const running = Promise.all(Array.from({ length: workers }, loop));
  return {
    counts,
    firstOkStartedAfter: (t) => oks.find((o) => o.started >= t)?.at,
    async stop() {
      stopped = true;
      await running;
    },
  };
}
