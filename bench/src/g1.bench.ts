/**
 * G1: gateway unwrap (mTLS + token + policy + durable audit + SoftHSM2) against a bare node:https
 * mTLS echo with the same request and answer, interleaved, at 1, 4, 16 and 64 concurrent over
 * keep-alive connections (one per loop). Target at 16 and 64: >= 0.60x.
 */
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { startHttpsEcho } from './lib/baselines.js';
import { openRawHsm } from './lib/hsm-raw.js';
import { fmt, interleave, line, warmUp } from './lib/measure.js';
import { rssSampler } from './lib/procs.js';
import { type BenchResult, mainIf, type Point, point } from './lib/result.js';
import {
  gatewayUnwrapFixture,
  MtlsClient,
  prepare,
  stackTls,
  startGateway,
  timing,
  unwrapCall,
} from './lib/stack.js';

export const G1_CONCURRENCY = [1, 4, 16, 64];

export async function runG1(): Promise<BenchResult> {
  const t0 = performance.now();
  const t = timing();
  const p = await prepare();
  const tls = stackTls(p);
  const gw = await startGateway(p, { name: 'g1' });
  const fixture = await gatewayUnwrapFixture(p, gw.url);
  const echo = await startHttpsEcho(p, 'g1', fixture.response);
  console.log(`G1 gateway unwrap: request ${fixture.body.length} B, answer ${fixture.response.length} B`);
  const module = findSoftHsmModule();
  const hsm = module ? openRawHsm(p, 4, module) : undefined;
  const hsmCall = () => hsm?.decrypt() ?? Promise.resolve();
  const hsmCeiling: Record<string, number> = {};
  const rss = rssSampler([gw.proc]);
  const points: Point[] = [];
  let warmed = false;
  for (const c of G1_CONCURRENCY) {
    const gwClient = new MtlsClient(gw.url, tls, c);
    const echoClient = new MtlsClient(echo.url, tls, c);
    const gwCall = unwrapCall(gwClient, fixture);
    const echoCall = unwrapCall(echoClient, fixture);
    if (!warmed) {
      await warmUp(gwCall, t.warmMs);
      await warmUp(echoCall, t.warmMs);
      warmed = true;
    }
    // Open every connection before measuring (handshakes are G3's subject).
    await Promise.all(Array.from({ length: c }, () => Promise.all([gwCall(), echoCall()])));
    // At 16 and 64 also the HSM alone (raw pkcs11js, 4 sessions as the gateway's pool): its ceiling.
    const withHsm = hsm !== undefined && c >= 16;
    const r = await interleave(
      [
        { name: 'gateway', call: gwCall },
        { name: 'echo', call: echoCall },
        ...(withHsm ? [{ name: 'hsm', call: hsmCall }] : []),
      ],
      { concurrency: c, rounds: t.rounds, roundMs: t.roundMs },
    );
    const h = r.cases.hsm;
    if (h) {
      hsmCeiling[`rawHsmDecrypts${c}`] = Math.round(h.throughput);
      console.log(`    ${line('raw pkcs11js decrypt (4 s.)', h)}`);
    }
    const m = r.cases.gateway;
    const b = r.cases.echo;
    if (!m || !b) throw new Error('missing case');
    const pt = point(c, m, b);
    points.push(pt);
    console.log(`  c=${c}\n    ${line('gateway unwrap', m)}\n    ${line('https mTLS echo', b)}`);
    console.log(`    ratio ${fmt(pt.ratio, 3)}  p99 ratio ${fmt(pt.p99Ratio, 2)}`);
    await Promise.all([gwClient.close(), echoClient.close()]);
  }
  const peak = rss.stop();
  hsm?.close();
  await Promise.all([gw.proc.stop(), echo.proc.stop()]);
  const judged = points.filter((x) => x.concurrency >= 16);
  const ratio = Math.min(...judged.map((x) => x.ratio));
  return {
    id: 'G1',
    title: 'gateway unwrap: mTLS + token + policy + durable audit + SoftHSM2',
    target: '>= 0.60x https mTLS echo at 16 and 64 concurrent',
    value: ratio,
    unit: 'x echo (worst of 16/64)',
    met: ratio >= 0.6,
    points,
    extra: { gatewayPeakRssMiB: peak[gw.proc.name] ?? Number.NaN, ...hsmCeiling },
    seconds: (performance.now() - t0) / 1000,
  };
}

await mainIf(import.meta.url, runG1);
