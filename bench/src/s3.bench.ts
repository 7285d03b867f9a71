/**
 * S3: shim Status at 16 concurrent while 4 loops of cached v2 Decrypt run against the same server,
 * against the grpc-js echo under the same load, interleaved. The gateway is stopped (SIGSTOP)
 * throughout the measurement, so a Status that waited on it would time out. Target >= 0.95x.
 */
import { KmsClient } from '@keygate/shim';
import { startGrpcEcho } from './lib/baselines.js';
import { fmt, interleave, line, runLoad, warmUp } from './lib/measure.js';
import { type BenchResult, mainIf, point } from './lib/result.js';
import { prepare, startGateway, startShim, timing } from './lib/stack.js';

export async function runS3(): Promise<BenchResult> {
  const t0 = performance.now();
  const t = timing();
  const p = await prepare();
  const gw = await startGateway(p, { name: 's3' });
  const shim = await startShim(p, { name: 's3', gatewayUrl: gw.url });
  const kms = new KmsClient(shim.socket);
  const seed = Buffer.alloc(32, 1);
  const enc = await kms.encrypt(seed, 'bench');
  const echo = await startGrpcEcho('s3', {
    plainBytes: seed.length,
    cipherBytes: enc.ciphertext.length,
    keyId: enc.key_id,
  });
  const base = new KmsClient(echo.socket);
  // Separate channels for the background load, as apiserver's watch/decrypt traffic would be.
  const kmsBg = new KmsClient(shim.socket);
  const baseBg = new KmsClient(echo.socket);
  const status = (c: KmsClient) => async () => {
    const s = await c.status();
    if (s.healthz !== 'ok' || s.key_id === '') throw new Error(`status ${s.healthz}`);
  };
  const withLoad = (statusCall: () => Promise<void>, bg: KmsClient) => {
    let stopBg = false;
    let bgOps = 0;
    return {
      call: statusCall,
      async start() {
        stopBg = false;
        const loop = async () => {
          while (!stopBg) {
            await bg.decrypt(enc.ciphertext, enc.key_id, 'bg');
            bgOps++;
          }
        };
        return Promise.all([loop(), loop(), loop(), loop()]);
      },
      stop() {
        stopBg = true;
      },
      get ops() {
        return bgOps;
      },
    };
  };
  const shimCase = withLoad(status(kms), kmsBg);
  const echoCase = withLoad(status(base), baseBg);
  await warmUp(status(kms), t.warmMs);
  await warmUp(status(base), t.warmMs);
  console.log('S3 shim Status under a cached Decrypt load, gateway stopped (SIGSTOP)');
  gw.proc.pause();
  let r: Awaited<ReturnType<typeof interleave>>;
  try {
    const bgShim = shimCase.start();
    const bgEcho = echoCase.start();
    // Let the background loads settle before measuring.
    await runLoad(status(kms), 4, 200);
    r = await interleave(
      [
        { name: 'shim', call: shimCase.call },
        { name: 'echo', call: echoCase.call },
      ],
      { concurrency: 16, rounds: t.rounds, roundMs: t.roundMs },
    );
    shimCase.stop();
    echoCase.stop();
    await Promise.all([bgShim, bgEcho]);
  } finally {
    gw.proc.resume();
  }
  const m = r.cases.shim;
  const b = r.cases.echo;
  if (!m || !b) throw new Error('missing case');
  const pt = point(16, m, b);
  console.log(`  ${line('shim Status', m)}\n  ${line('grpc echo Status', b)}\n  ratio ${fmt(pt.ratio, 3)}`);
  for (const c of [kms, base, kmsBg, baseBg]) c.close();
  await Promise.all([shim.proc.stop(), echo.proc.stop()]);
  await gw.proc.stop();
  return {
    id: 'S3',
    title: 'shim Status under load, gateway stopped',
    target: '>= 0.95x echo; never waits on the gateway',
    value: pt.ratio,
    unit: 'x echo',
    met: pt.ratio >= 0.95 && m.errors === 0,
    points: [pt],
    extra: {
      statusErrorsWhileGatewayStopped: m.errors,
      bgDecryptsShim: shimCase.ops,
      bgDecryptsEcho: echoCase.ops,
    },
    seconds: (performance.now() - t0) / 1000,
  };
}

await mainIf(import.meta.url, runS3);
