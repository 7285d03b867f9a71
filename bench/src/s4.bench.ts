/**
 * S4: cold start. 2,000 distinct v2 ciphertexts made under 20 DEKs (a shim with DEK_MAX_USES=100),
 * then a fresh shim decrypts all of them once from 64 concurrent loops in shuffled order (cold),
 * then once more (warm: the S1 case on the same shim, same run). Targets: gateway unwraps <= distinct
 * DEKs (concurrent unwraps of one wrapped DEK share one gateway call) and cold >= 0.5x warm.
 */
import { decodeShimCiphertext } from '@keygate/shared';
import { KmsClient } from '@keygate/shim';
import { metricSum } from '#devstack/metrics.js';
import { fmt, line, median, runLoad, summarise } from './lib/measure.js';
import { type BenchResult, mainIf, type Point, point } from './lib/result.js';
import {
  fetchToken,
  MtlsClient,
  prepare,
  type RunningShim,
  stackTls,
  startGateway,
  startShim,
  timing,
} from './lib/stack.js';

const COUNT = 2000;
const USES = 100;

async function shimUnwraps(shim: RunningShim): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${shim.healthPort}/metrics`);
  return metricSum(await res.text(), 'keygate_shim_gateway_calls_total', { op: 'unwrap', outcome: 'ok' });
}

export async function runS4(): Promise<BenchResult> {
  const t0 = performance.now();
  const t = timing();
  const rounds = Math.max(1, t.rounds);
  const p = await prepare();
  const gw = await startGateway(p, { name: 's4' });
  const admin = new MtlsClient(gw.url, stackTls(p), 1);
  await fetchToken(admin, '').catch(() => undefined);
  const gatewayUnwraps = async () =>
    metricSum(await admin.get('/metrics'), 'keygate_gateway_operations_total', {
      operation: 'unwrap',
      outcome: 'success',
    });

  // The corpus: 2,000 sequential encrypts, a new DEK every 100 uses.
  const maker = await startShim(p, {
    name: 's4-maker',
    gatewayUrl: gw.url,
    dekMaxUses: USES,
    refreshSeconds: 3600,
  });
  const mk = new KmsClient(maker.socket);
  const corpus: { ct: Buffer; keyId: string }[] = [];
  for (let i = 0; i < COUNT; i++) {
    const seed = Buffer.alloc(32);
    seed.writeUInt32BE(i, 0);
    const e = await mk.encrypt(seed, `s4-${i}`);
    corpus.push({ ct: e.ciphertext, keyId: e.key_id });
  }
  mk.close();
  await maker.proc.stop();
  const deks = new Set(corpus.map((c) => decodeShimCiphertext(c.ct, 1024).wrappedDek.toString('hex'))).size;
  // Shuffle (fixed seed) so that concurrent calls hit many DEKs at once, as an apiserver start-up does.
  let s = 12345;
  for (let i = corpus.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    const a = corpus[i];
    const b = corpus[j];
    if (a && b) {
      corpus[i] = b;
      corpus[j] = a;
    }
  }
  console.log(
    `S4 cold start: ${corpus.length} ciphertexts under ${deks} DEKs, 64 concurrent, ${rounds} fresh shims`,
  );

  const points: Point[] = [];
  const calls: number[] = [];
  const gwCalls: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const shim = await startShim(p, { name: 's4-cold', gatewayUrl: gw.url });
    const kms = new KmsClient(shim.socket);
    await kms.status();
    const shimBefore = await shimUnwraps(shim);
    const gwBefore = await gatewayUnwraps();
    const call = (i: number) => {
      const c = corpus[i];
      if (!c) throw new Error('index');
      return kms.decrypt(c.ct, c.keyId, 'cold');
    };
    const cold = summarise(await runLoad(call, 64, 60_000, corpus.length));
    const shimCalls = (await shimUnwraps(shim)) - shimBefore;
    const gwDelta = (await gatewayUnwraps()) - gwBefore;
    const warm = summarise(await runLoad(call, 64, 60_000, corpus.length));
    const pt = point(64, cold, warm);
    points.push(pt);
    calls.push(shimCalls);
    gwCalls.push(gwDelta);
    console.log(`  round ${r + 1}: ${line('cold (fresh shim)', cold)}`);
    console.log(`           ${line('warm (S1, same shim)', warm)}`);
    console.log(
      `           ratio ${fmt(pt.ratio, 3)}  gateway unwraps ${gwDelta} (shim counted ${shimCalls}) for ${deks} DEKs`,
    );
    kms.close();
    await shim.proc.stop();
  }
  await admin.close();
  await gw.proc.stop();
  const ratio = median(points.map((x) => x.ratio));
  const maxCalls = Math.max(...gwCalls);
  const errors = points.reduce((n, x) => n + x.measured.errors + x.baseline.errors, 0);
  return {
    id: 'S4',
    title: 'cold start: fresh shim, 2,000 ciphertexts under 20 DEKs, 64 concurrent',
    target: 'gateway unwraps <= distinct DEKs; >= 0.5x S1 (warm, same shim)',
    value: ratio,
    unit: 'x warm',
    met: ratio >= 0.5 && maxCalls <= deks && errors === 0,
    points,
    extra: {
      distinctDeks: deks,
      gatewayUnwrapsMax: maxCalls,
      gatewayUnwraps: gwCalls.join(','),
      shimUnwraps: calls.join(','),
      errors,
    },
    seconds: (performance.now() - t0) / 1000,
  };
}

await mainIf(import.meta.url, runS4);
