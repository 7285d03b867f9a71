/**
 * Profiling driver: starts the gateway or the shim with --cpu-prof (via BENCH_PROFILE), drives
 * only the measured case (no baseline) at one concurrency for a while, stops it and prints the
 * top frames. Usage: node bench/dist/tools/profile-load.js gateway|shim [concurrency] [seconds]
 */
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { KmsClient } from '@keygate/shim';
import { line, runLoad, summarise } from '../lib/measure.js';
import { stopAll } from '../lib/procs.js';
import {
  BENCH_HOME,
  fetchToken,
  MtlsClient,
  prepare,
  stackTls,
  startGateway,
  startShim,
  unwrapCall,
  unwrapFixture,
} from '../lib/stack.js';
import { summariseProfile } from './prof-top.js';

/** utime + stime of a process (all threads) in ms. */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

const what = process.argv[2] === 'shim' ? 'shim' : 'gateway';
const c = Number(process.argv[3] ?? 16);
const seconds = Number(process.argv[4] ?? 6);
const profDir = join(BENCH_HOME, 'prof');
rmSync(profDir, { recursive: true, force: true });
process.env.BENCH_PROFILE = what;
try {
  const p = await prepare();
  const gw = await startGateway(p, { name: `prof-${what}` });
  if (what === 'gateway') {
    const client = new MtlsClient(gw.url, stackTls(p), c);
    const token = await fetchToken(client, readFileSync(p.apiKeyFile, 'utf8').trim());
    const f = await unwrapFixture(p, client, token);
    const call = unwrapCall(client, f);
    await runLoad(call, c, 1000);
    const cpu0 = cpuMs(gw.proc.pid);
    const r = summarise(await runLoad(call, c, seconds * 1000));
    console.log(line(`gateway unwrap c=${c}`, r));
    console.log(`gateway CPU per request: ${((cpuMs(gw.proc.pid) - cpu0) / r.ops).toFixed(3)} ms`);
    await client.close();
  } else {
    const shim = await startShim(p, { name: 'prof', gatewayUrl: gw.url });
    const kms = new KmsClient(shim.socket);
    const e = await kms.encrypt(Buffer.alloc(32, 1), 'p');
    const call = () => kms.decrypt(e.ciphertext, e.key_id, 'p');
    await runLoad(call, c, 1000);
    const cpu0 = cpuMs(shim.proc.pid);
    const r = summarise(await runLoad(call, c, seconds * 1000));
    console.log(line(`shim decrypt c=${c}`, r));
    console.log(`shim CPU per call: ${((cpuMs(shim.proc.pid) - cpu0) / r.ops).toFixed(3)} ms`);
    kms.close();
    await shim.proc.stop();
  }
  await gw.proc.stop();
  for (const f of readdirSync(profDir)) {
    console.log(`\n== ${f}`);
    console.log(summariseProfile(join(profDir, f), 30));
  }
} finally {
  await stopAll();
}
