import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { systemRandom } from '@keygate/shared/crypto';
import type { RunningGateway } from './main.js';
import {
  type CallResult,
  call,
  createGatewayFixture,
  errorCode,
  type GatewayFixture,
  INSTANCE,
} from './testing/gateway-fixture.js';
import { startLoad, waitFor } from './testing/load.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';

interface Wrapped {
  ciphertext: string;
}

/** The value of the first sample of `name` that has all of `labels`. */
function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^(\w+)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (m?.[1] !== name) continue;
    const have = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`))) return Number(m[3]);
  }
  return undefined;
}

/**
 * Issue 13: the token folder of a running gateway disappears for a few seconds under load (an
 * unmounted volume, a network HSM failing over) and comes back. A missing object whose key the
 * store lists as active is a 503, never 410 KEY_DELETED_ERR; /readyz and /metrics show it; the
 * gateway recovers without a restart; a key destroyed on purpose still answers 410.
 */
describe('gateway over HTTPS with SoftHSM2: key objects gone for a while', { timeout: 180_000 }, () => {
  let fx: GatewayFixture;

  before(async () => {
    fx = await createGatewayFixture();
  });

  after(() => {
    fx?.softhsm.cleanup();
  });

  for (const workerThreads of [0, 2]) {
    it(`token folder hidden 3 s under load (${workerThreads} worker threads): 503 not 410, /readyz and /metrics tell, back without a restart`, async () => {
      const log = captureLines();
      let gw: RunningGateway | undefined = await startGatewayFromFile(
        fx.writeConfig(`glitch-${workerThreads}`, { workerThreads }),
        { logDestination: log.stream },
      );
      try {
        const url = gw.url;
        const api = (method: string, path: string, opts: Omit<Parameters<typeof call>[3], 'ca'> = {}) =>
          call(url, method, path, { ...opts, ca: fx.ca.certPem });
        const admin = { client: fx.clients.admin, instance: INSTANCE };
        const created = await api('POST', '/api/v2/keys', {
          ...admin,
          body: {
            metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
            resources: [{ type: 'application/vnd.ibm.kms.key+json', name: `glitch-${workerThreads}` }],
          },
        });
        assert.equal(created.status, 201, created.text);
        const keyId = String(created.json<{ resources: { id: string }[] }>().resources[0]?.id);
        const act = (name: string, body: unknown): Promise<CallResult> =>
          api('POST', `/api/v2/keys/${keyId}/actions/${name}`, {
            client: fx.clients.allowed,
            instance: INSTANCE,
            body,
          });
        const oldDek = systemRandom(32).toString('base64');
        const old = await act('wrap', { plaintext: oldDek, aad: ['old'] });
        assert.equal(old.status, 200, old.text);

        const outcome = (r: CallResult) => (r.status === 200 ? 'ok' : `${r.status} ${errorCode(r)}`);
        const load = startLoad(async () => {
          const dek = systemRandom(32).toString('base64');
          const w = await act('wrap', { plaintext: dek, aad: ['ns/s'] });
          if (w.status !== 200) return outcome(w);
          const u = await act('unwrap', { ciphertext: w.json<Wrapped>().ciphertext, aad: ['ns/s'] });
          if (u.status !== 200) return outcome(u);
          return u.json().plaintext === dek ? 'ok' : 'WRONG_PLAINTEXT';
        }, 8);
        let restoredAt = 0;
        let during: { ready: CallResult; metrics: string } | undefined;
        try {
          await waitFor(() => (load.counts.get('ok') ?? 0) >= 20, 'load running');
          const restore = fx.softhsm.hideToken(fx.tokenLabel);
          const hiddenAt = performance.now();
          try {
            await waitFor(
              async () => (await api('GET', '/readyz', { client: fx.clients.allowed })).status === 503,
              '/readyz 503',
            );
            during = {
              ready: await api('GET', '/readyz', { client: fx.clients.allowed }),
              metrics: (await api('GET', '/metrics', { client: fx.clients.allowed })).text,
            };
            await waitFor(() => performance.now() - hiddenAt >= 3000, 'three seconds');
          } finally {
            restore();
            restoredAt = performance.now();
          }
          await waitFor(() => load.firstOkStartedAfter(restoredAt) !== undefined, 'a success after restore');
          await waitFor(
            async () => (await api('GET', '/readyz', { client: fx.clients.allowed })).status === 200,
            '/readyz 200 again',
          );
        } finally {
          await load.stop();
        }
        const firstOk = load.firstOkStartedAfter(restoredAt) ?? Number.NaN;
        console.log(
          `gateway token glitch (${workerThreads} worker threads): first success ${Math.round(firstOk - restoredAt)} ms after restore; outcomes ${JSON.stringify([...load.counts])}`,
        );

        // During: not ready, saying which objects and that it recovers; the gauge counts them.
        assert.ok(during);
        assert.equal(during.ready.status, 503);
        const hsm = during.ready.json<{ hsm: { ready: boolean; reasons: string[] } }>().hsm;
        assert.equal(hsm.ready, false);
        assert.match(hsm.reasons.join(' '), new RegExp(`keygate:${INSTANCE}:${keyId}:`));
        assert.match(hsm.reasons.join(' '), /recovering \(attempt \d+/);
        assert.ok((metric(during.metrics, 'keygate_hsm_key_objects_missing') ?? 0) >= 1, during.metrics);
        assert.equal(metric(during.metrics, 'keygate_hsm_ready'), 0);

        // Never 410; only 503s with a precise code while the token was away.
        const codes = [...load.counts.keys()];
        assert.ok(!codes.some((c) => c.startsWith('410')), JSON.stringify([...load.counts]));
        for (const c of codes) {
          assert.ok(['ok', '503 HSM_KEY_OBJECT_MISSING', '503 HSM_UNAVAILABLE'].includes(c), c);
        }
        assert.ok(codes.includes('503 HSM_KEY_OBJECT_MISSING'), JSON.stringify([...load.counts]));

        // After: same process, old blobs unwrap, everything works, metrics say what happened.
        const back = await act('unwrap', { ciphertext: old.json<Wrapped>().ciphertext, aad: ['old'] });
        assert.equal(back.status, 200, back.text);
        assert.equal(back.json().plaintext, oldDek);
        const results = await Promise.all(
          Array.from({ length: 16 }, async () => {
            const w = await act('wrap', { aad: ['after'] });
            return (
              w.status === 200 &&
              (await act('unwrap', { ciphertext: w.json<Wrapped>().ciphertext, aad: ['after'] })).status ===
                200
            );
          }),
        );
        assert.deepEqual(results, Array(16).fill(true));
        const m = (await api('GET', '/metrics', { client: fx.clients.allowed })).text;
        assert.equal(metric(m, 'keygate_hsm_key_objects_missing'), 0);
        assert.equal(metric(m, 'keygate_hsm_ready'), 1);
        assert.ok(
          (metric(m, 'keygate_hsm_recoveries_total', { step: 'reinit', outcome: 'recovered' }) ?? 0) >= 1,
          m,
        );
        assert.equal(log.lines.filter((l) => l.msg === 'pkcs11 recovery started').length, 1);
        const ended = log.lines.filter((l) => l.msg === 'pkcs11 recovery ended');
        assert.equal(ended.length, 1);
        assert.equal(typeof ended[0]?.durationMs, 'number');

        // A key destroyed on purpose: 410 from the store, and no recovery starts for it.
        const del = await api('DELETE', `/api/v2/keys/${keyId}`, admin);
        assert.equal(del.status, 204, del.text);
        const gone = await act('unwrap', { ciphertext: old.json<Wrapped>().ciphertext, aad: ['old'] });
        assert.equal(gone.status, 410);
        assert.equal(errorCode(gone), 'KEY_DELETED_ERR');
        assert.equal((await api('GET', '/readyz', { client: fx.clients.allowed })).status, 200);
        assert.equal(log.lines.filter((l) => l.msg === 'pkcs11 recovery started').length, 1);
      } finally {
        await gw?.close();
        gw = undefined;
      }
    });
  }
});
