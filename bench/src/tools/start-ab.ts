/**
 * Restart → first Decrypt of existing data, for several ways of starting the shim, interleaved in
 * one run against one gateway (issue 21, "Start fast"; docs/benchmarks.md, "Issue 21: start and
 * memory"). Same measure as K1's restart (lib/restart.ts: spawn → a v2 Decrypt of a ciphertext
 * sealed before, answered), with the start profile of each case.
 *
 *   node bench/dist/tools/start-ab.js                  # on the Node running it
 *   BENCH_ROUNDS=9 node bench/dist/tools/start-ab.js   # rounds (default 7)
 *   BENCH_START_CASES=bundle,bundle-warm …             # only these cases
 *   BENCH_K1_NODE_OPTIONS=… …                          # the shim's NODE_OPTIONS (default: the static pod's)
 *   BENCH_SHIM_NODE=~/.cache/keygate-node/node-v24.22.3/bin/node …   # the shim on another Node
 *
 * Cases: `compiled` runs shim/dist/cli.js (the ~190 compiled modules and their dependencies, as
 * before the bundle); `bundle` the package bin with the compile cache off; `bundle-warm` the bin
 * with a compile cache an earlier start wrote (a restart on Node 22+; on Node 20 the same as
 * `bundle`). The cases alternate in order, round after round, so drift falls on all alike.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { KmsClient } from '@keygate/shim';
import { SHIM_CLI } from '#devstack/paths.js';
import { SHIPPED_NODE_OPTIONS } from '../k1.bench.js';
import { fmt, median } from '../lib/measure.js';
import { runTool } from '../lib/procs.js';
import { restartShim } from '../lib/restart.js';
import { BENCH_HOME, prepare, REPO_ROOT, shimConfigFor, startGateway, startShim } from '../lib/stack.js';
import { formatProfile, medianProfile, type StartStepTime } from '../lib/start-profile.js';

interface Case {
  readonly name: string;
  readonly cli: string;
  readonly env: Record<string, string>;
}

function cases(warmDir: string): Case[] {
  const all: Case[] = [
    {
      name: 'compiled',
      cli: join(REPO_ROOT, 'shim/dist/cli.js'),
      env: { NODE_DISABLE_COMPILE_CACHE: '1' },
    },
    { name: 'bundle', cli: SHIM_CLI, env: { NODE_DISABLE_COMPILE_CACHE: '1' } },
    { name: 'bundle-warm', cli: SHIM_CLI, env: { NODE_COMPILE_CACHE: warmDir } },
  ];
  const only = process.env.BENCH_START_CASES?.split(',').filter(Boolean);
  return only ? all.filter((c) => only.includes(c.name)) : all;
}

async function main(): Promise<void> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
  const shimNode = process.env.BENCH_SHIM_NODE;
  mkdirSync(BENCH_HOME, { recursive: true });
  const p = await prepare();
  const gw = await startGateway(p, { name: 'start-ab' });
  const shim = await startShim(p, { name: 'start-ab', gatewayUrl: gw.url, newDek: false });
  const kms = new KmsClient(shim.socket);
  const sealed = await kms.encrypt(Buffer.from('start-ab'), 'start-ab');
  kms.close();
  await shim.proc.stop();
  const config = shimConfigFor(p, { name: 'start-ab', gatewayUrl: gw.url, newDek: false }, shim.socket);
  const warmDir = mkdtempSync(join(BENCH_HOME, 'compile-cache-'));
  const list = cases(warmDir);
  const got = new Map(list.map((c) => [c.name, { ms: [] as number[], profiles: [] as StartStepTime[][] }]));
  console.log(
    `start-ab, shim on ${shimNode ?? `Node ${process.version}`}, NODE_OPTIONS="${SHIPPED_NODE_OPTIONS}", ${rounds} rounds: ${list.map((c) => c.name).join(', ')}`,
  );
  const one = (c: Case) =>
    restartShim(
      `ab-${c.name}`,
      config,
      shim.socket,
      { ciphertext: sealed.ciphertext, keyId: sealed.key_id },
      SHIPPED_NODE_OPTIONS,
      { cli: c.cli, env: c.env, ...(shimNode ? { node: shimNode } : {}) },
    );
  // One start of each first: writes the warm case's compile cache, warms the page cache for all.
  for (const c of list) await one(c);
  for (let r = 0; r < rounds; r++) {
    for (const c of r % 2 === 0 ? list : [...list].reverse()) {
      const s = await one(c);
      const g = got.get(c.name);
      g?.ms.push(s.ms);
      g?.profiles.push(s.profile);
    }
  }
  await gw.proc.stop();
  rmSync(warmDir, { recursive: true, force: true });
  for (const c of list) {
    const g = got.get(c.name);
    if (!g) continue;
    console.log(
      `\n${c.name}: restart → first Decrypt median ${fmt(median(g.ms))} ms (${g.ms.map((x) => fmt(x)).join(', ')})`,
    );
    console.log(formatProfile(medianProfile(g.profiles)));
  }
}

void runTool(main);
