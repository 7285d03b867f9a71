/**
 * S2: shim v1beta1 Encrypt + Decrypt round trip (NEW_DEK=false, DEK cached) of a 1 KiB object,
 * against the grpc-js echo with the same sizes, interleaved, 16 concurrent. Target >= 0.80x.
 */
import { KmsClient } from '@keygate/shim';
import { startGrpcEcho } from './lib/baselines.js';
import { fmt, interleave, line, warmUp } from './lib/measure.js';
import { type BenchResult, mainIf, point } from './lib/result.js';
import { prepare, startGateway, startShim, timing } from './lib/stack.js';

export async function runS2(): Promise<BenchResult> {
  const t0 = performance.now();
  const t = timing();
  const p = await prepare();
  const gw = await startGateway(p, { name: 's2' });
  const shim = await startShim(p, { name: 's2', gatewayUrl: gw.url, newDek: false });
  const kms = new KmsClient(shim.socket);
  const plain = Buffer.alloc(1024, 3);
  const enc = await kms.v1Encrypt(plain);
  const echo = await startGrpcEcho('s2', {
    plainBytes: plain.length,
    cipherBytes: enc.cipher.length,
    keyId: 'v1',
  });
  const base = new KmsClient(echo.socket);
  const roundTrip = (c: KmsClient) => async () => {
    const e = await c.v1Encrypt(plain);
    await c.v1Decrypt(e.cipher);
  };
  const shimCall = roundTrip(kms);
  const echoCall = roundTrip(base);
  console.log(`S2 shim v1 Encrypt+Decrypt of ${plain.length} B (cipher ${enc.cipher.length} B)`);
  await warmUp(shimCall, t.warmMs);
  await warmUp(echoCall, t.warmMs);
  const r = await interleave(
    [
      { name: 'shim', call: shimCall },
      { name: 'echo', call: echoCall },
    ],
    { concurrency: 16, rounds: t.rounds, roundMs: t.roundMs },
  );
  const m = r.cases.shim;
  const b = r.cases.echo;
  if (!m || !b) throw new Error('missing case');
  const pt = point(16, m, b);
  console.log(
    `  ${line('shim round trip', m)}\n  ${line('grpc echo round trip', b)}\n  ratio ${fmt(pt.ratio, 3)}`,
  );
  kms.close();
  base.close();
  await Promise.all([shim.proc.stop(), echo.proc.stop()]);
  await gw.proc.stop();
  return {
    id: 'S2',
    title: 'shim v1 Encrypt+Decrypt round trip, NEW_DEK=false',
    target: '>= 0.80x echo',
    value: pt.ratio,
    unit: 'x echo',
    met: pt.ratio >= 0.8,
    points: [pt],
    seconds: (performance.now() - t0) / 1000,
  };
}

await mainIf(import.meta.url, runS2);
