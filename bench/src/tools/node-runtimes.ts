/**
 * Shim start time and RSS on Node 20 vs Node 24, same run (issue 20; docs/benchmarks.md, "Node 24").
 *
 *   node bench/dist/tools/node-runtimes.js            # the Node running it + Node 24 (scripts/node24.sh)
 *   BENCH_NODES=/usr/bin/node:/x/bin/node node bench/dist/tools/node-runtimes.js   # these runtimes
 *   BENCH_ROUNDS=7 …                                  # rounds per case (default 5)
 *
 * Each case starts `shim/bin/keygate-shim.js serve` (what the image runs) against one gateway on the
 * SoftHSM2 stack and measures spawn → "keygate shim started" (socket bound), spawn → v2 Status
 * healthy (token fetched, key_id known), and the shim's RSS once healthy and 1 s later. Cases, per
 * runtime: the module compile cache off (NODE_DISABLE_COMPILE_CACHE=1: the "before"), cold (a fresh
 * temp folder: a first start), warm (the folder of an earlier start: a restart). The cases run in
 * alternating order, round after round, so drift falls on all alike; medians are printed.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitHealthy } from '#devstack/launch.js';
import { median } from '../lib/measure.js';
import { runTool } from '../lib/procs.js';
import { BENCH_HOME, prepare, REPO_ROOT, shimConfigFor, startGateway } from '../lib/stack.js';

const SHIM_BIN = join(REPO_ROOT, 'shim/bin/keygate-shim.js');
type CacheMode = 'off' | 'cold' | 'warm' | 'warm+heap';
/** V8 heap limits for the 'warm+heap' case: the static pod's old space plus a small young generation. */
const HEAP_OPTIONS = process.env.BENCH_SHIM_NODE_OPTIONS ?? '--max-old-space-size=96 --max-semi-space-size=2';

interface Sample {
  readonly startedMs: number;
  readonly healthyMs: number;
  readonly rssMiB: number;
  readonly rss1sMiB: number;
  /** Of RSS +1 s: anonymous memory (heap, stacks); the rest is mapped files (the node binary). */
  readonly anon1sMiB: number;
}

function rssMiB(pid: number, field: 'VmRSS' | 'RssAnon' = 'VmRSS'): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = (field === 'VmRSS' ? /VmRSS:\s+(\d+) kB/ : /RssAnon:\s+(\d+) kB/).exec(status);
  return m?.[1] ? Number(m[1]) / 1024 : Number.NaN;
}

function runtimes(): string[] {
  const listed = process.env.BENCH_NODES;
  if (listed) return listed.split(':').filter((n) => n !== '');
  const node24 = execFileSync('bash', [join(REPO_ROOT, 'scripts/node24.sh')], { encoding: 'utf8' }).trim();
  return [...new Set([process.execPath, join(node24, 'bin/node')])];
}

async function startOnce(
  node: string,
  config: string,
  socket: string,
  tmp: string,
  mode: CacheMode,
): Promise<Sample> {
  const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp };
  delete env.NODE_COMPILE_CACHE;
  if (mode === 'off') env.NODE_DISABLE_COMPILE_CACHE = '1';
  else delete env.NODE_DISABLE_COMPILE_CACHE;
  if (mode === 'warm+heap') env.NODE_OPTIONS = HEAP_OPTIONS;
  else delete env.NODE_OPTIONS;
  const t0 = performance.now();
  const child = spawn(node, [SHIM_BIN, 'serve', '--config', config], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`${node}: spawn failed`);
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  let out = '';
  const startedMs = await new Promise<number>((resolve, reject) => {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      out += d;
      if (out.includes('"msg":"keygate shim started"')) resolve(performance.now() - t0);
    });
    child.on('exit', (code) =>
      reject(new Error(`${node}: the shim exited (${code}) before it started:\n${out}`)),
    );
  });
  await waitHealthy(socket);
  const healthyMs = performance.now() - t0;
  const rss = rssMiB(pid);
  await new Promise((r) => setTimeout(r, 1000));
  const rss1s = rssMiB(pid);
  const anon1s = rssMiB(pid, 'RssAnon');
  child.kill('SIGTERM');
  await exited;
  return { startedMs, healthyMs, rssMiB: rss, rss1sMiB: rss1s, anon1sMiB: anon1s };
}

async function main(): Promise<void> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
  const nodes = runtimes();
  const p = await prepare();
  const gw = await startGateway(p, { name: 'node-runtimes' });
  const sockDir = join(BENCH_HOME, 'sock');
  mkdirSync(sockDir, { recursive: true });
  const socket = join(sockDir, 'node-runtimes.sock');
  const config = shimConfigFor(p, { name: 'node-runtimes', gatewayUrl: gw.url }, socket);
  const tmpRoot = mkdtempSync(join(BENCH_HOME, 'tmp-node-runtimes-'));

  const cases = nodes.flatMap((node) => {
    const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
    const warmTmp = mkdtempSync(join(tmpRoot, 'warm-'));
    return (['off', 'cold', 'warm', 'warm+heap'] as const).map((mode) => ({
      node,
      version,
      mode,
      warmTmp,
      samples: [] as Sample[],
    }));
  });
  // Seed each warm cache once (not measured).
  for (const c of cases.filter((x) => x.mode === 'warm'))
    await startOnce(c.node, config, socket, c.warmTmp, 'warm');
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? cases : [...cases].reverse();
    for (const c of order) {
      const tmp = c.mode.startsWith('warm') ? c.warmTmp : mkdtempSync(join(tmpRoot, 'cold-'));
      c.samples.push(await startOnce(c.node, config, socket, tmp, c.mode));
    }
  }
  console.log(
    `shim start and RSS, median of ${rounds} rounds (same run, same gateway; heap = ${HEAP_OPTIONS}):`,
  );
  console.log(
    '| Node | compile cache | socket bound (ms) | healthy (ms) | RSS healthy (MiB) | RSS +1 s (MiB) | of which anonymous (MiB) |',
  );
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const c of cases) {
    const m = (f: (s: Sample) => number) => median(c.samples.map(f));
    console.log(
      `| ${c.version} | ${c.mode} | ${m((s) => s.startedMs).toFixed(0)} | ${m((s) => s.healthyMs).toFixed(0)} | ${m((s) => s.rssMiB).toFixed(1)} | ${m((s) => s.rss1sMiB).toFixed(1)} | ${m((s) => s.anon1sMiB).toFixed(1)} |`,
    );
  }
}

void runTool(main);
