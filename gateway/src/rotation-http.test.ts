import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PATHS } from '@keygate/shared/api';
import { systemRandom } from '@keygate/shared/crypto';
import { MemoryFleetStore } from './adapters/fleet/memory-fleet-store.js';
import type { NodeRecord } from './core/fleet/fleet.js';
import type { RotationStatus } from './core/fleet/rotation-view.js';
import type { RunningGateway } from './main.js';
import {
  type CallResult,
  call,
  createGatewayFixture,
  errorCode,
  type GatewayFixture,
  INSTANCE,
} from './testing/gateway-fixture.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';

const MIN = 60_000;

/**
 * Guided rotation through the real gateway (HTTPS, mTLS, SoftHSM2, the file key store, the
 * log audit sink), with the fleet in a MemoryFleetStore the test fills as shims and the
 * gateway's usage counting would, and a clock the test moves (docs/rotation.md).
 */
describe('guided rotation over HTTPS with SoftHSM2', () => {
  let fx: GatewayFixture;
  let gw: RunningGateway;
  let offset = 0;
  const clock = { now: () => new Date(Date.now() + offset) };
  const fleet = new MemoryFleetStore({ now: clock.now });
  const log = captureLines();
  let api: (
    method: string,
    path: string,
    opts?: Omit<Parameters<typeof call>[3], 'ca'>,
  ) => Promise<CallResult>;

  before(async () => {
    fx = await createGatewayFixture();
    const config = fx.writeConfig('rotation', {
      // Small usage limits, so that the last case sees an automatic rotation.
      extra: 'rotation:\n  quietWindow: 10m\nkeys:\n  usageLimit: { warnAt: 2, rotateAt: 2, blockSize: 1 }\n',
    });
    gw = await startGatewayFromFile(config, { logDestination: log.stream, fleet, clock });
    api = (method, path, opts = {}) => call(gw.url, method, path, { ...opts, ca: fx.ca.certPem });
  });

  after(async () => {
    await gw?.close();
    fx?.softhsm.cleanup();
  });

  const admin = (method: string, path: string, body?: unknown) =>
    api(method, path, { client: fx.clients.admin, instance: INSTANCE, body });
  const reader = (method: string, path: string, body?: unknown) =>
    api(method, path, { client: fx.clients.allowed, instance: INSTANCE, body });
  const report = (keyId: string, node: string, keyVersion: string): void => {
    const record: NodeRecord = {
      cluster: 'prod-eu',
      node,
      instance: INSTANCE,
      crk: keyId,
      shimVersion: '0.1.0',
      kmsKeyId: `keygate/${INSTANCE}/${keyId}/${keyVersion}`,
      keyVersion,
      apis: ['v2'],
      cacheSize: 3,
      health: 'ok',
      lastSeen: clock.now().toISOString(),
      replica: 'test',
    };
    fleet.noteNode(record);
  };
  const audits = (operation: string) =>
    log.lines
      .map((l) => l.audit as { operation?: string; outcome?: string; reason?: string; keyVersion?: string })
      .filter((a) => a?.operation === operation);

  it('rotate, converge, refuse disable while unsafe, force, enable, disable once safe', async () => {
    const created = await admin('POST', PATHS.keys, {
      metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
      resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'rotating' }],
    });
    assert.equal(created.status, 201, created.text);
    const keyId = created.json<{ resources: { id: string; keyVersion: { id: string } }[] }>().resources[0]
      ?.id as string;
    const aad = ['default/secret-1'];
    const dek = systemRandom(32).toString('base64');
    const wrapped = await reader('POST', PATHS.keyAction(keyId, 'wrap'), { plaintext: dek, aad });
    assert.equal(wrapped.status, 200, wrapped.text);
    const old = wrapped.json<{ ciphertext: string; keyVersion: { id: string } }>();
    const v1 = old.keyVersion.id;
    const unwrapOld = () =>
      reader('POST', PATHS.keyAction(keyId, 'unwrap'), { ciphertext: old.ciphertext, aad });

    // Never rotated: no status; the only version is current and cannot be disabled.
    const none = await reader('GET', PATHS.keyRotation(keyId));
    assert.deepEqual([none.status, errorCode(none)], [404, 'NOT_FOUND_ERR']);
    const current = await admin('POST', PATHS.keyVersionAction(keyId, v1, 'disable'));
    assert.deepEqual([current.status, errorCode(current)], [409, 'KEY_VERSION_CURRENT_ERR']);

    assert.equal((await admin('POST', PATHS.keyAction(keyId, 'rotate'))).status, 204);
    const [rotation] = await fleet.rotations(INSTANCE, keyId);
    assert.equal(rotation?.fromVersion, v1);
    assert.equal(rotation?.startedBy, 'ops-admin');
    const v2 = rotation?.toVersion as string;

    // One node still on v1, and v1 still unwrapped by the cluster: not converged, not quiet.
    report(keyId, 'm1', v2);
    report(keyId, 'm2', v1);
    fleet.noteUse({
      cluster: 'prod-eu',
      instance: INSTANCE,
      crk: keyId,
      version: v1,
      op: 'unwrap',
      at: clock.now(),
    });
    const behind = await reader('GET', PATHS.keyRotation(keyId));
    assert.equal(behind.status, 200, behind.text);
    const s1 = behind.json<RotationStatus>();
    assert.equal(s1.safeToDisable, false);
    assert.equal(s1.currentVersion, v2);
    // The reader's own wrap of v1 (in the rotation's first minute) is counted by the gateway
    // itself, under its identity: a cluster with use but no shim reports.
    assert.deepEqual(
      s1.clusters.map((c) => [
        c.cluster,
        c.converged,
        c.oldVersionUse[0]?.unwraps,
        c.oldVersionUse[0]?.wraps,
      ]),
      [
        ['prod-eu', false, 1, 0],
        ['spiffe://keygate/cluster/prod-eu-1', false, 0, 1],
      ],
    );
    assert.ok(
      s1.reasons.includes(`cluster prod-eu: node m2 still reports version ${v1}`),
      s1.reasons.join('|'),
    );

    const refused = await admin('POST', PATHS.keyVersionAction(keyId, v1, 'disable'));
    assert.deepEqual([refused.status, errorCode(refused)], [409, 'ROTATION_NOT_CONVERGED']);
    const blockers = refused.json<{ resources: { rotationReasons: string[] }[] }>().resources[0]
      ?.rotationReasons;
    assert.ok(blockers?.some((r) => r.includes('node m2 still reports')));
    assert.ok(blockers?.some((r) => r.startsWith(`version ${v1} unwrapped once`)));
    assert.equal((await reader('POST', PATHS.keyVersionAction(keyId, v1, 'disable'))).status, 403);

    // m2 converged, but v1 was used a moment ago: still refused, for the quiet window only.
    report(keyId, 'm2', v2);
    const quiet = await admin('POST', PATHS.keyVersionAction(keyId, v1, 'disable'), {});
    const quietReasons = quiet.json<{ resources: { rotationReasons: string[] }[] }>().resources[0]
      ?.rotationReasons;
    assert.equal(quiet.status, 409);
    assert.ok(quietReasons?.every((r) => !r.includes('still reports')));
    assert.match(quietReasons?.at(-1) ?? '', /^quiet for \d+s of the 10m window$/);

    // Forced: disabled, audited as forced; blobs under v1 fail alone, new wraps go on.
    const forced = await admin('POST', PATHS.keyVersionAction(keyId, v1, 'disable'), { force: true });
    assert.equal(forced.status, 204, forced.text);
    const wasForced = audits('key.version.disable').at(-1);
    assert.deepEqual(
      [wasForced?.outcome, wasForced?.reason, wasForced?.keyVersion],
      ['success', 'forced', v1],
    );
    const disabled = await unwrapOld();
    assert.deepEqual([disabled.status, errorCode(disabled)], [422, 'KEY_VERSION_DISABLED_ERR']);
    const versions = await reader('GET', PATHS.keyVersions(keyId));
    const listed = versions.json<{ resources: { id: string; disabledAt?: string }[] }>().resources;
    assert.ok(listed.find((v) => v.id === v1)?.disabledAt !== undefined);
    assert.equal(listed.find((v) => v.id === v2)?.disabledAt, undefined);
    const fresh = await reader('POST', PATHS.keyAction(keyId, 'wrap'), { plaintext: dek, aad });
    assert.equal(fresh.json<{ keyVersion: { id: string } }>().keyVersion.id, v2);

    assert.equal((await admin('POST', PATHS.keyVersionAction(keyId, v1, 'enable'))).status, 204);
    const back = await unwrapOld();
    assert.equal(back.status, 200, back.text);
    assert.equal(back.json().plaintext, dek);
    assert.equal(audits('key.version.enable').at(-1)?.outcome, 'success');

    // Eleven minutes later, every node reporting v2 and no use of v1: safe, and disabled unforced.
    offset += 11 * MIN;
    report(keyId, 'm1', v2);
    report(keyId, 'm2', v2);
    const safe = (await reader('GET', PATHS.keyRotation(keyId))).json<RotationStatus>();
    assert.deepEqual([safe.safeToDisable, safe.reasons], [true, []]);
    assert.equal((await admin('POST', PATHS.keyVersionAction(keyId, v1, 'disable'))).status, 204);
    const last = audits('key.version.disable').at(-1);
    assert.deepEqual([last?.outcome, last?.reason], ['success', undefined]);
    assert.equal(errorCode(await unwrapOld()), 'KEY_VERSION_DISABLED_ERR');
  });

  it('records the automatic rotations of keys.usageLimit too', async () => {
    const created = await admin('POST', PATHS.keys, {
      metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
      resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'busy' }],
    });
    const key = created.json<{ resources: { id: string; keyVersion: { id: string } }[] }>().resources[0];
    const keyId = key?.id as string;
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const w = await reader('POST', PATHS.keyAction(keyId, 'wrap'), { aad: [] });
      assert.equal(w.status, 200, w.text);
      seen.add(w.json<{ keyVersion: { id: string } }>().keyVersion.id);
    }
    assert.equal(seen.size, 2, 'the third wrap went to a new version');
    const [auto] = await fleet.rotations(INSTANCE, keyId);
    assert.equal(auto?.fromVersion, key?.keyVersion.id);
    assert.ok(auto !== undefined && seen.has(auto.toVersion) && auto.toVersion !== auto.fromVersion);
    assert.equal(auto?.startedBy, 'system:usage-limit');
    const s = (await reader('GET', PATHS.keyRotation(keyId))).json<RotationStatus>();
    assert.equal(s.rotation.toVersion, auto?.toVersion);
  });
});
