import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * A child process whose output goes straight to a log file (not through a pipe into the bench
 * process, so the load generator does not pay for the server's log lines).
 */
export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logFile: string;
  /** The first log line matching `re` (polls the file); rejects on exit or timeout. */
  waitForLine(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Resident set size now, in MiB (from /proc). */
  rssMiB(): number;
  /** SIGTERM, SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** SIGSTOP / SIGCONT (used to show Status never waits on the gateway). */
  pause(): void;
  resume(): void;
}

const live = new Set<Proc>();

export function spawnProc(
  name: string,
  args: readonly string[],
  opts: {
    env?: Record<string, string>;
    logFile: string;
    nodeArgs?: readonly string[];
    /** Another program than node (then `args` are its arguments and `nodeArgs` are ignored). */
    command?: string;
  },
): Proc {
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const fd = openSync(opts.logFile, 'w');
  const argv = opts.command === undefined ? [...(opts.nodeArgs ?? []), ...args] : [...args];
  const child = spawn(opts.command ?? process.execPath, argv, {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${name}: spawn failed`);
  let exitCode: number | string | undefined;
  const exited = new Promise<void>((resolve) => {
    child.on('exit', (code, signal) => {
      exitCode = code ?? signal ?? 'unknown';
      resolve();
    });
  });
  const lines = () => (existsSync(opts.logFile) ? readFileSync(opts.logFile, 'utf8').split('\n') : []);
  const proc: Proc = {
    name,
    child,
    pid,
    logFile: opts.logFile,
    async waitForLine(re, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = lines().find((l) => re.test(l));
        if (hit !== undefined) return hit;
        if (exitCode !== undefined || Date.now() > deadline) {
          const tail = lines().slice(-15).join('\n');
          throw new Error(
            `${name}: ${exitCode !== undefined ? `exited (${exitCode})` : 'timed out'} before ${re}:\n${tail}`,
          );
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    rssMiB() {
      try {
        const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
        return m?.[1] ? Number(m[1]) / 1024 : Number.NaN;
      } catch {
        return Number.NaN;
      }
    },
    async stop(graceMs = 5000) {
      live.delete(proc);
      if (exitCode !== undefined) return;
      try {
        process.kill(pid, 'SIGCONT');
        process.kill(pid, 'SIGTERM');
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }, graceMs);
      await exited;
      clearTimeout(timer);
    },
    pause() {
      process.kill(pid, 'SIGSTOP');
    },
    resume() {
      process.kill(pid, 'SIGCONT');
    },
  };
  live.add(proc);
  return proc;
}

/** Stops every child still running (on errors and at exit). */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop(2000)));
}

/** Samples the RSS of `procs` every `everyMs` until stopped; returns the peak per name. */
export function rssSampler(procs: readonly Proc[], everyMs = 200): { stop(): Record<string, number> } {
  const peak: Record<string, number> = {};
  const take = () => {
    for (const p of procs) {
      const v = p.rssMiB();
      if (Number.isFinite(v)) peak[p.name] = Math.max(peak[p.name] ?? 0, v);
    }
  };
  take();
  const timer = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return peak;
    },
  };
}

/** Runs a bench tool's `main`; whatever it spawned is stopped after, and a failure sets exit code 1. */
export async function runTool(main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (err) {
    console.error(err);
    process.exitCode = 1;
  } finally {
    await stopAll();
  }
}
