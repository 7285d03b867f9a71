/**
 * Issue 21, transport: the shim's gRPC servers side by side (grpc-js, and the shim's own on
 * node:http2, KEYGATE_GRPC_SERVER=h2) against the Go peer, all three up at once and driven in turn
 * by the same Go load client (K1's v2 Encrypt+Decrypt round trips), rounds rotated so that each
 * sees the same share of the box's noise. Prints per server: round trips/s, p50/p99, server CPU
 * per round trip (all threads, /proc), peak RSS under load, and restart → first Decrypt.
 * Usage: node bench/dist/tools/k1-transports.js [rounds=6] [roundMs=2000] [restarts=3]
 * Env: BENCH_K1_NODE_OPTIONS as K1; BENCH_SHIM_NODE=/path/to/node runs the shims on that Node (the
 * shim has no native module, so a Node 24 shim can run beside this Node 20 bench and gateway).
 */
import { readFileSync } from 'node:fs';
import { SHIPPED_NODE_OPTIONS } from '../k1.bench.js';
import { goSide, type Side } from '../lib/k1-clients.js';
import { fmt, type LoadResult, line, median, merge, summarise } from '../lib/measure.js';
import { peerBinary, preparePeerHsm, startPeer } from '../lib/peer.js';
import { type Proc, rssSampler, stopAll } from '../lib/procs.js';
import { restartShim } from '../lib/restart.js';
import { prepare, shimConfigFor, startGateway, startShim } from '../lib/stack.js';

/** utime + stime of a process (all threads) in ms. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

const rounds = Number(process.argv[2] ?? 6);
const roundMs = Number(process.argv[3] ?? 2000);
const restarts = Number(process.argv[4] ?? 3);
const KINDS = ['grpc-js', 'h2'] as const;

interface Target {
  readonly name: string;
  readonly proc: Proc;
  readonly side: Side;
}

try {
  const bin = peerBinary();
  const hsm = preparePeerHsm();
  const p = await prepare();
  const gw = await startGateway(p, { name: 'k1t' });
  // lib/procs spawns process.execPath: from here on (shims and their restarts) that is BENCH_SHIM_NODE.
  if (process.env.BENCH_SHIM_NODE) process.execPath = process.env.BENCH_SHIM_NODE;
  const targets: Target[] = [];
  const shims = [];
  for (const kind of KINDS) {
    process.env.KEYGATE_GRPC_SERVER = kind;
    const s = await startShim(p, {
      name: `k1t-${kind}`,
      gatewayUrl: gw.url,
      nodeOptions: SHIPPED_NODE_OPTIONS,
    });
    shims.push({ kind, s });
    targets.push({ name: `shim ${kind}`, proc: s.proc, side: goSide(kind, bin.loadPath, s.socket) });
  }
  const peer = await startPeer(bin.path, hsm, 'k1t');
  targets.push({ name: 'go peer', proc: peer.proc, side: goSide('peer', bin.loadPath, peer.socket) });
  for (const t of targets) {
    await t.side.run(1, 400);
    await t.side.run(16, 1200);
  }
  for (const c of [16, 64]) {
    const got = new Map(targets.map((t) => [t.name, { res: [] as LoadResult[], cpu: 0 }]));
    const rss = rssSampler(targets.map((t) => t.proc));
    for (let r = 0; r < rounds; r++) {
      // Rotate the order: every target runs first, middle and last equally often.
      const order = targets.map((_, i) => targets[(i + r) % targets.length] as Target);
      for (const t of order) {
        const g = got.get(t.name);
        if (!g) continue;
        const cpu0 = cpuMs(t.proc.pid);
        const { res } = await t.side.run(c, roundMs);
        g.cpu += cpuMs(t.proc.pid) - cpu0;
        g.res.push(res);
      }
    }
    const peak = rss.stop();
    const peerOps = summarise(merge(got.get('go peer')?.res ?? [])).throughput;
    console.log(`c=${c}, ${rounds} rounds of ${roundMs} ms each`);
    for (const t of targets) {
      const g = got.get(t.name);
      if (!g) continue;
      const m = merge(g.res);
      const s = summarise(m);
      console.log(
        `  ${line(t.name, s)}  ratio ${fmt(s.throughput / peerOps, 3)}  CPU/rt ${fmt(g.cpu / m.ops, 3)} ms  peak RSS ${fmt(peak[t.proc.name] ?? Number.NaN, 1)} MiB`,
      );
    }
  }
  // Restart → first Decrypt, per server, alternating, with data sealed before.
  const { KmsClient } = await import('@keygate/shim');
  const times = new Map<string, number[]>();
  const sealedBy = [];
  for (const { kind, s } of shims) {
    const k = new KmsClient(s.socket);
    const e = await k.encrypt(Buffer.alloc(32, 3), 'k1t');
    k.close();
    await s.proc.stop();
    sealedBy.push({ kind, socket: s.socket, sealed: { ciphertext: e.ciphertext, keyId: e.key_id } });
  }
  for (let i = 0; i < restarts; i++) {
    for (const { kind, socket, sealed } of sealedBy) {
      process.env.KEYGATE_GRPC_SERVER = kind;
      const config = shimConfigFor(p, { name: `k1t-${kind}`, gatewayUrl: gw.url }, socket);
      const r = await restartShim(`k1t-${kind}`, config, socket, sealed, SHIPPED_NODE_OPTIONS);
      times.set(kind, [...(times.get(kind) ?? []), r.ms]);
    }
  }
  for (const [kind, ms] of times) {
    console.log(
      `restart → first Decrypt, shim ${kind}: median ${fmt(median(ms))} ms (${ms.map((x) => fmt(x)).join(', ')})`,
    );
  }
  await peer.proc.stop();
  await gw.proc.stop();
} finally {
  await stopAll();
}
