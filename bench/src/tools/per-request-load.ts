/**
 * Issue 21's per-request mode in isolation: one gateway and one shim with NEW_DEK=true and
 * CACHE_SIZE=0 (every Encrypt wraps a new DEK, every Decrypt unwraps, through the gateway), driven
 * with the Go load client (v2 Encrypt+Decrypt round trips, like K1) at 16 and 64 concurrent.
 * Prints round trips/s and the CPU each process spent per round trip; with BENCH_PROFILE=gateway|
 * shim|all the processes run under --cpu-prof and their top frames are printed at the end.
 * BENCH_PR_VARIANTS=a,b runs several shim/gateway variants interleaved (A B, B A, …) on one
 * gateway process each: `h1` (an HTTP/1.1 gateway and shim, as before issue 21), `h1on2` (the
 * shim on HTTP/1.1 to a gateway that also serves HTTP/2), `h2` (HTTP/2 both ways), `cN` (HTTP/1.1
 * with KEYGATE.GATEWAY_CONNECTIONS=N), `w0` (HTTP/1.1, PKCS#11 calls on libuv's pool, no worker threads).
 * Usage: node bench/dist/tools/per-request-load.js [seconds per point] [rounds]
 */
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { goSide } from '../lib/k1-clients.js';
import { fmt, type LoadResult, line, merge, summarise } from '../lib/measure.js';
import { peerBinary } from '../lib/peer.js';
import { stopAll } from '../lib/procs.js';
import { BENCH_HOME, prepare, type RunningShim, startGateway, startShim } from '../lib/stack.js';
import { summariseProfile } from './prof-top.js';

/** utime + stime of a process (all threads) in ms. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

const seconds = Number(process.argv[2] ?? 4);
const rounds = Number(process.argv[3] ?? 2);
const variants = (process.env.BENCH_PR_VARIANTS ?? 'h2').split(',').filter(Boolean);
const profDir = join(BENCH_HOME, 'prof');
rmSync(profDir, { recursive: true, force: true });

interface Running {
  readonly name: string;
  readonly shim: RunningShim;
  readonly gwPid: number;
  stop(): Promise<void>;
}

try {
  const p = await prepare();
  const bin = peerBinary();
  const running: Running[] = [];
  for (const v of variants) {
    const gw = await startGateway(p, {
      name: `pr-${v}`,
      edit: (cfg) => {
        // Only when on: a gateway from before issue 21 (an A/B build) knows no such key.
        if (v === 'h2' || v === 'h1on2') (cfg.server as Record<string, unknown>).http2 = true;
        if (v === 'w0') delete (cfg.hsm as Record<string, unknown>).workerThreads;
      },
    });
    const shim = await startShim(p, {
      name: `pr-${v}`,
      gatewayUrl: gw.url,
      newDek: true,
      cacheSize: 0,
      ...(v === 'h2' ? { http2: true } : {}),
      ...(v.startsWith('c') ? { extraKeygate: { GATEWAY_CONNECTIONS: v.slice(1) } } : {}),
      nodeOptions: '--max-old-space-size=96 --max-semi-space-size=16',
    });
    running.push({
      name: v,
      shim,
      gwPid: gw.proc.pid,
      stop: async () => {
        await shim.proc.stop();
        await gw.proc.stop();
      },
    });
  }
  for (const r of running) await goSide(r.name, bin.loadPath, r.shim.socket).run(16, 1500);
  for (const c of [16, 64]) {
    const got = new Map<string, { res: LoadResult[]; shimMs: number; gwMs: number }>();
    for (let i = 0; i < rounds; i++) {
      for (const r of i % 2 === 0 ? running : [...running].reverse()) {
        const s0 = cpuMs(r.shim.proc.pid);
        const g0 = cpuMs(r.gwPid);
        const { res } = await goSide(r.name, bin.loadPath, r.shim.socket).run(c, seconds * 1000);
        const g = got.get(r.name) ?? { res: [], shimMs: 0, gwMs: 0 };
        g.res.push(res);
        g.shimMs += cpuMs(r.shim.proc.pid) - s0;
        g.gwMs += cpuMs(r.gwPid) - g0;
        got.set(r.name, g);
        if (res.errors > 0) console.warn(`  ${r.name}: ${res.errors} errors (first: ${res.firstError})`);
      }
    }
    for (const [name, g] of got) {
      const s = summarise(merge(g.res));
      console.log(
        `${line(`${name} c=${c}`, s)}  CPU per round trip: shim ${fmt(g.shimMs / s.ops, 3)} ms, gateway ${fmt(g.gwMs / s.ops, 3)} ms`,
      );
    }
  }
  for (const r of running) await r.stop();
  for (const f of existsSync(profDir) ? readdirSync(profDir, { withFileTypes: true }) : []) {
    if (!f.isFile()) continue;
    console.log(`\n== ${f.name}`);
    console.log(summariseProfile(join(profDir, f.name), 30));
  }
} finally {
  await stopAll();
}
