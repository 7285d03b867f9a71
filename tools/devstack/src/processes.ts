import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';

/** A child process started by a test or the dev stack, with its output kept for diagnosis. */
export interface Service {
  readonly name: string;
  readonly child: ChildProcess;
  /** Every output line so far (stdout and stderr). */
  readonly lines: string[];
  /** Resolves with the first line matching `pattern`, rejects if the process exits first or on timeout. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code or signal. */
  stop(graceMs?: number): Promise<number | string>;
  /** SIGKILL, by PID. */
  kill(): Promise<number | string>;
  readonly exited: Promise<number | string>;
}

export interface SpawnOptions {
  readonly env?: Record<string, string | undefined>;
  readonly cwd?: string;
  /** Also append output to this file. */
  readonly logFile?: string;
  /** Echo lines to this function (e.g. the dev stack's console). */
  readonly echo?: (line: string) => void;
}

/** Starts `command args…` and collects its output line by line. */
export function startService(
  name: string,
  command: string,
  args: string[],
  opts: SpawnOptions = {},
): Service {
  const child = spawn(command, args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (l: string) => void }[] = [];
  const file = opts.logFile ? createWriteStream(opts.logFile, { flags: 'a' }) : undefined;
  const onData = (stream: NodeJS.ReadableStream) => {
    let buf = '';
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      buf += chunk;
      let nl = buf.indexOf('\n');
      while (nl >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        file?.write(`${line}\n`);
        opts.echo?.(line);
        for (const w of [...waiters]) {
          if (w.pattern.test(line)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(line);
          }
        }
        nl = buf.indexOf('\n');
      }
    });
  };
  if (child.stdout) onData(child.stdout);
  if (child.stderr) onData(child.stderr);
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      file?.end();
      resolve(code ?? signal ?? 'unknown');
    });
  });

  const waitFor = (pattern: RegExp, timeoutMs = 30_000) => {
    const seen = lines.find((l) => pattern.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `${name}: no line matching ${pattern} within ${timeoutMs} ms; last lines:\n${lines.slice(-20).join('\n')}`,
          ),
        );
      }, timeoutMs);
      const waiter = {
        pattern,
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      waiters.push(waiter);
      void exited.then((code) => {
        clearTimeout(timer);
        reject(
          new Error(
            `${name} exited (${code}) before printing ${pattern}; last lines:\n${lines.slice(-20).join('\n')}`,
          ),
        );
      });
    });
  };

  const signal = (sig: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, sig);
      } catch {
        // already gone
      }
    }
  };

  return {
    name,
    child,
    lines,
    exited,
    waitFor,
    async stop(graceMs = 5_000) {
      signal('SIGTERM');
      const timer = setTimeout(() => signal('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      signal('SIGKILL');
      return exited;
    },
  };
}
