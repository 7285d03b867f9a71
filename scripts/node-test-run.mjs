// Runs Node's test runner in a child process, streams its spec report, and counts its summary
// (`ℹ pass N`, …) so that callers can print one plain "N passed, N failed" line that CI reads.
import { spawn } from 'node:child_process';

/**
 * Resolves with the runner's exit code and counts once it has exited.
 * @param {string[]} args  arguments after `node --test`
 * @param {{ cwd: string, env?: NodeJS.ProcessEnv }} opts
 */
export function runNodeTest(args, opts) {
  const child = spawn(process.execPath, ['--test', ...args], {
    cwd: opts.cwd,
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...opts.env, FORCE_COLOR: '0' },
  });
  const counts = { tests: 0, pass: 0, fail: 0, skipped: 0, todo: 0, cancelled: 0 };
  let buffered = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    buffered += chunk;
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      const m = /^ℹ (tests|pass|fail|skipped|todo|cancelled) (\d+)$/.exec(line.trim());
      if (m) counts[m[1]] = Number(m[2]);
      nl = buffered.indexOf('\n');
    }
  });
  return new Promise((resolve) => {
    child.on('close', (code, signal) => resolve({ code: code ?? 1, signal, counts }));
  });
}
