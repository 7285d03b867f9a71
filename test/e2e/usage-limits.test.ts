import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { codeOfErrorCollection } from '@keygate/shared/api';
import { startGatewayProcess } from '#devstack/launch.js';
import { GATEWAY_CLI } from '#devstack/paths.js';
import { type PreparedStack, prepareStack } from '#devstack/prepare-stack.js';
import type { Service } from '#devstack/processes.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { type AuditLine, readAuditRecords } from '../support/e2e-helpers.js';
import { type KpSession, kpSession } from '../support/kp-http.js';

/** The tiny limits every gateway of this suite runs with (docs/gateway.md "Usage limits"). */
const BLOCK = 4;
const WARN_AT = 6;
const ROTATE_AT = 10;

/** The audit fields of an automatic rotation (docs/audit.md "Automatic rotations"). */
interface RotationLine extends AuditLine {
  readonly seq?: number;
  readonly subject?: string;
  readonly keyId?: string;
  readonly keyVersion?: string;
  readonly fromKeyVersion?: string;
  readonly reason?: string;
  readonly reserved?: number;
}

interface Wrapped {
  readonly plaintext: string;
  readonly ciphertext: string;
  readonly version: string;
}

/**
 * Issue 17 item 2 on real parts: gateway processes (the CLI) on SoftHSM2 behind mutual TLS, with
 * keys.usageLimit at blockSize 4, warnAt 6, rotateAt 10, driven through the Key Protect HTTP API.
 * Policy rotate adds versions that new wraps carry while old blobs still unwrap, and audits each
 * rotation as a key.rotate by system:usage-limit; policy refuse answers 409 KEY_USAGE_LIMIT_ERR
 * until an admin rotates; two processes on one file store reserve disjoint blocks and rotate once.
 */
describe('e2e: usage limits per key version (SoftHSM2, mTLS, real gateway processes)', {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-e2e-usage-'));
  let p: PreparedStack;
  const services: Service[] = [];
  const sessions: KpSession[] = [];
  const figures: string[] = [];

  before(async () => {
    p = await prepareStack({ home, gatewayPort: 0, hsm: 'softhsm2' });
  });
  after(async () => {
    for (const s of sessions) s.close();
    for (const s of services) await s.stop();
    for (const f of figures) console.log(`e2e usage limits: ${f}`);
    rmSync(home, { recursive: true, force: true });
  });

  /** The dev stack's config with the tiny limits, `policy`, and its own audit folder when given. */
  function configFor(
    name: string,
    policy: 'rotate' | 'refuse',
    auditDir?: string,
    rotateAfter?: string,
  ): string {
    let text = readFileSync(p.gatewayConfig, 'utf8');
    if (auditDir !== undefined) text = text.replace(`  dir: ${p.auditDir}\n`, `  dir: ${auditDir}\n`);
    assert.ok(auditDir === undefined || text.includes(auditDir), 'the audit folder was replaced');
    text += `keys:
  usageLimit:
    policy: ${policy}
    blockSize: ${BLOCK}
    warnAt: ${WARN_AT}
    rotateAt: ${ROTATE_AT}
`;
    if (rotateAfter !== undefined) text += `    rotateAfter: ${rotateAfter}\n`;
    const file = join(home, `gateway-${name}.yaml`);
    writeFileSync(file, text);
    return file;
  }

  async function gateway(name: string, config: string): Promise<{ service: Service; url: string }> {
    const g = await startGatewayProcess(p, { name, config });
    services.push(g.service);
    return g;
  }

  async function stop(service: Service): Promise<void> {
    await service.stop();
    services.splice(services.indexOf(service), 1);
  }

  async function session(url: string, as: 'cluster' | 'admin'): Promise<KpSession> {
    const s = await kpSession({
      url,
      caFile: p.pki.caFile,
      certFile: as === 'admin' ? p.pki.adminCertFile : p.pki.clientCertFile,
      keyFile: as === 'admin' ? p.pki.adminKeyFile : p.pki.clientKeyFile,
      apiKeyFile: as === 'admin' ? p.adminApiKeyFile : p.apiKeyFile,
      instance: p.instanceId,
    });
    sessions.push(s);
    return s;
  }

  async function createKey(admin: KpSession, name: string): Promise<string> {
    const made = await admin.call('POST', '/api/v2/keys', {
      metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
      resources: [{ type: 'application/vnd.ibm.kms.key+json', name }],
    });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    return String((made.body?.resources as { id: string }[] | undefined)?.[0]?.id);
  }

  async function wrap(s: KpSession, keyId: string): Promise<Wrapped> {
    const plaintext = randomBytes(32).toString('base64');
    const r = await s.call('POST', `/api/v2/keys/${keyId}/actions/wrap`, { plaintext });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    const version = String((r.body?.keyVersion as { id?: string } | undefined)?.id);
    return { plaintext, ciphertext: String(r.body?.ciphertext), version };
  }

  async function assertUnwraps(s: KpSession, keyId: string, blobs: readonly Wrapped[]): Promise<void> {
    for (const b of blobs) {
      const r = await s.call('POST', `/api/v2/keys/${keyId}/actions/unwrap`, { ciphertext: b.ciphertext });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body?.plaintext, b.plaintext, 'unwrap returned another plaintext');
      assert.equal((r.body?.keyVersion as { id?: string } | undefined)?.id, b.version);
    }
  }

  /** The key's version ids in order, and each one's reserved count, from the store file. */
  function storeVersions(keyId: string): { id: string; reserved: number }[] {
    const file = JSON.parse(readFileSync(join(home, 'keys.json'), 'utf8')) as {
      keys: { id: string; versions: { id: string; encryptionsReserved?: number }[] }[];
    };
    const key = file.keys.find((k) => k.id === keyId);
    assert.ok(key, `key ${keyId} in the store`);
    return key.versions.map((v) => ({ id: v.id, reserved: v.encryptionsReserved ?? 0 }));
  }

  /** The usage gauges of one gateway for `keyId`: version → {reserved, used}. */
  async function usageMetrics(
    url: string,
    keyId: string,
  ): Promise<Map<string, { reserved: number; used: number }>> {
    const agent = new Agent({
      ca: readFileSync(p.pki.caFile),
      cert: readFileSync(p.pki.clientCertFile),
      key: readFileSync(p.pki.clientKeyFile),
    });
    const text = await new Promise<string>((resolve, reject) => {
      const req = request(`${url}/metrics`, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () =>
          res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics ${res.statusCode}`)),
        );
      });
      req.on('error', reject);
      req.end();
    }).finally(() => agent.destroy());
    const out = new Map<string, { reserved: number; used: number }>();
    const series = /^keygate_key_version_encryptions_(reserved|used)\{([^}]*)\} (\d+)$/gm;
    for (const m of text.matchAll(series)) {
      const labels = Object.fromEntries(
        [...(m[2] as string).matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1] as string, l[2] as string]),
      );
      if (labels.key !== keyId) continue;
      assert.equal(labels.instance, p.instanceId);
      const version = labels.version as string;
      const cur = out.get(version) ?? { reserved: -1, used: -1 };
      out.set(version, { ...cur, [m[1] as string]: Number(m[3]) });
    }
    return out;
  }

  function auditVerify(dir: string): string {
    // Throws (failing the test) on a non-zero exit: a chain the verifier refuses.
    return execFileSync(
      process.execPath,
      [GATEWAY_CLI, 'audit', 'verify', dir, '--key', p.auditPublicKeyFile],
      {
        encoding: 'utf8',
        env: { ...process.env, ...p.env },
      },
    ).split('\n')[0] as string;
  }

  const rotationsOf = (dir: string, keyId: string) =>
    (readAuditRecords(dir) as RotationLine[]).filter(
      (r) => r.type === 'event' && r.operation === 'key.rotate' && r.keyId === keyId,
    );
  const logLines = (s: Service, msgStart: string) =>
    s.lines
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => String(l.msg).startsWith(msgStart));

  it('policy rotate: wraps past rotateAt carry new versions, old blobs unwrap, metrics, audit record, audit verify', async () => {
    const g = await gateway('rotate', configFor('rotate', 'rotate'));
    const admin = await session(g.url, 'admin');
    const cluster = await session(g.url, 'cluster');
    const keyId = await createKey(admin, 'usage-rotate');
    const wraps = 25;
    const blobs: Wrapped[] = [];
    for (let i = 0; i < wraps; i++) blobs.push(await wrap(cluster, keyId));

    const versions = storeVersions(keyId);
    const ids = versions.map((v) => v.id);
    assert.equal(versions.length, 3, `${wraps} wraps at rotateAt ${ROTATE_AT}: two automatic rotations`);
    // Wraps go to the versions in order, at most rotateAt each: 10, 10, 5.
    assert.deepEqual(
      blobs.map((b) => ids.indexOf(b.version)),
      Array.from({ length: wraps }, (_, i) => Math.floor(i / ROTATE_AT)),
    );
    // Blocks of 4: 12 reserved for each full version (the last block cut at 10), 8 for the third.
    assert.deepEqual(
      versions.map((v) => v.reserved),
      [12, 12, 8],
    );
    await assertUnwraps(cluster, keyId, blobs);
    // The gauges follow the version this gateway wraps under now.
    const metrics = await usageMetrics(g.url, keyId);
    assert.deepEqual([...metrics], [[ids[2], { reserved: 8, used: 5 }]]);
    // One warning per version, each when its reserved count first reached warnAt (the block to 8).
    const warns = logLines(g.service, 'key version has reserved warnAt');
    assert.deepEqual(
      warns.filter((l) => l.keyId === keyId).map((l) => [l.versionId, l.reserved]),
      ids.map((id) => [id, 8]),
    );
    assert.equal(logLines(g.service, 'key rotated automatically').filter((l) => l.keyId === keyId).length, 2);

    await stop(g.service);
    const rotations = rotationsOf(p.auditDir, keyId);
    assert.deepEqual(
      rotations.map((r) => [r.subject, r.outcome, r.fromKeyVersion, r.keyVersion, r.reason, r.reserved]),
      [
        ['system:usage-limit', 'success', ids[0], ids[1], 'count', 12],
        ['system:usage-limit', 'success', ids[1], ids[2], 'count', 12],
      ],
    );
    // Each rotation's record comes before the first wrap answered under the new version.
    const records = readAuditRecords(p.auditDir) as RotationLine[];
    for (const r of rotations) {
      const at = records.findIndex((x) => x.seq === r.seq);
      const firstWrap = records.findIndex(
        (x) => x.operation === 'wrap' && x.keyId === keyId && x.keyVersion === r.keyVersion,
      );
      assert.ok(at >= 0 && at < firstWrap, 'the rotation record precedes wraps under the new version');
    }
    const verdict = auditVerify(p.auditDir);
    assert.match(verdict, /^OK/);
    figures.push(
      `rotate: ${wraps} wraps, ${versions.length} versions, reserved ${versions.map((v) => v.reserved).join('/')}, used by version ${ids.map((id) => blobs.filter((b) => b.version === id).length).join('/')}, metrics ${JSON.stringify([...metrics])}, ${rotations.length} audit rotations; ${verdict}`,
    );
  });

  it('policy refuse: 409 KEY_USAGE_LIMIT_ERR past rotateAt, unwrap still works, an admin rotate restores wraps', async () => {
    const g = await gateway('refuse', configFor('refuse', 'refuse'));
    const admin = await session(g.url, 'admin');
    const cluster = await session(g.url, 'cluster');
    const keyId = await createKey(admin, 'usage-refuse');
    const blobs: Wrapped[] = [];
    for (let i = 0; i < ROTATE_AT; i++) blobs.push(await wrap(cluster, keyId));
    const refusedCalls = 3;
    for (let i = 0; i < refusedCalls; i++) {
      const r = await cluster.call('POST', `/api/v2/keys/${keyId}/actions/wrap`, {
        plaintext: randomBytes(32).toString('base64'),
      });
      assert.equal(r.status, 409);
      assert.equal(codeOfErrorCollection(r.body), 'KEY_USAGE_LIMIT_ERR');
    }
    // Rewrap is an encryption too.
    const rewrap = await cluster.call('POST', `/api/v2/keys/${keyId}/actions/rewrap`, {
      ciphertext: (blobs[0] as Wrapped).ciphertext,
    });
    assert.equal(rewrap.status, 409);
    assert.equal(codeOfErrorCollection(rewrap.body), 'KEY_USAGE_LIMIT_ERR');
    await assertUnwraps(cluster, keyId, blobs);
    assert.equal(storeVersions(keyId).length, 1, 'refuse never rotates by itself');
    assert.equal(
      logLines(g.service, 'key version reached keys.usageLimit.rotateAt').filter((l) => l.keyId === keyId)
        .length,
      1,
      'one error line per version',
    );

    const rotated = await admin.call('POST', `/api/v2/keys/${keyId}/actions/rotate`);
    assert.ok(rotated.status === 200 || rotated.status === 204, `rotate: ${rotated.status}`);
    const after = await wrap(cluster, keyId);
    const versions = storeVersions(keyId);
    assert.equal(versions.length, 2);
    assert.equal(after.version, versions[1]?.id);
    await assertUnwraps(cluster, keyId, [...blobs, after]);

    await stop(g.service);
    const records = readAuditRecords(p.auditDir) as RotationLine[];
    const mine = records.filter((r) => r.keyId === keyId);
    // The first refusal is on record at once; the rest of its window may be one summary record.
    const refusals = mine.filter((r) => r.errorCode === 'KEY_USAGE_LIMIT_ERR');
    assert.ok(refusals.length >= 1);
    assert.ok(refusals.every((r) => r.outcome === 'failure'));
    const refusedWraps = refusals
      .filter((r) => r.operation === 'wrap')
      .reduce((n, r) => n + (r.count ?? 1), 0);
    assert.equal(refusedWraps, refusedCalls, 'every refused wrap is counted in the audit log');
    const rotations = mine.filter((r) => r.operation === 'key.rotate');
    assert.deepEqual(
      rotations.map((r) => [r.subject, r.keyVersion]),
      [['ops-admin', versions[1]?.id]],
      'only the admin rotation, by the admin',
    );
    const verdict = auditVerify(p.auditDir);
    assert.match(verdict, /^OK/);
    figures.push(
      `refuse: ${ROTATE_AT} wraps then ${refusedCalls} wraps and 1 rewrap refused (409), reserved ${versions.map((v) => v.reserved).join('/')}, admin rotate, wrap under the new version; ${verdict}`,
    );
  });

  it('rotateAfter: a version older than it is rotated on its next wrap, audited with reason age', async () => {
    const g = await gateway('age', configFor('age', 'rotate', undefined, '2s'));
    const admin = await session(g.url, 'admin');
    const cluster = await session(g.url, 'cluster');
    const keyId = await createKey(admin, 'usage-age');
    const first = await wrap(cluster, keyId);
    // 2 s leaves room for a slow first wrap (the version's age counts from the key's creation).
    await new Promise((r) => setTimeout(r, 2100));
    const second = await wrap(cluster, keyId);
    const versions = storeVersions(keyId);
    assert.deepEqual(
      [first.version, second.version],
      versions.map((v) => v.id),
      'the second wrap, after 2 s, is under a new version',
    );
    await assertUnwraps(cluster, keyId, [first, second]);
    await stop(g.service);
    const rotations = rotationsOf(p.auditDir, keyId);
    assert.deepEqual(
      rotations.map((r) => [r.subject, r.fromKeyVersion, r.keyVersion, r.reason, r.reserved]),
      [['system:usage-limit', first.version, second.version, 'age', BLOCK]],
    );
    const verdict = auditVerify(p.auditDir);
    assert.match(verdict, /^OK/);
    figures.push(
      `age: 2 wraps 2.1 s apart, ${versions.length} versions, ${rotations.length} audit rotation (age); ${verdict}`,
    );
  });

  it('two gateway processes on one file store: disjoint blocks, the store total >= the wraps, one rotation', async () => {
    const dirs = [join(home, 'audit-a'), join(home, 'audit-b')];
    const a = await gateway('replica-a', configFor('replica-a', 'rotate', dirs[0]));
    const b = await gateway('replica-b', configFor('replica-b', 'rotate', dirs[1]));
    const admin = await session(a.url, 'admin');
    const clients = [await session(a.url, 'cluster'), await session(b.url, 'cluster')];
    const keyId = await createKey(admin, 'usage-replicas');
    // 14 wraps, both replicas at once: the first version makes at most 10, at least 7 (a replica
    // that sees the new version drops the rest of its block), so the second stays below its limit.
    const rounds = 7;
    const blobs: Wrapped[] = [];
    for (let i = 0; i < rounds; i++) blobs.push(...(await Promise.all(clients.map((c) => wrap(c, keyId)))));
    const wraps = blobs.length;

    const versions = storeVersions(keyId);
    assert.equal(versions.length, 2, 'exactly one rotation (one new version, not two)');
    const byVersion = versions.map((v) => blobs.filter((x) => x.version === v.id).length);
    assert.ok((byVersion[0] as number) <= ROTATE_AT, `${byVersion[0]} wraps under the first version`);
    for (const [i, v] of versions.entries()) {
      assert.ok(v.reserved >= (byVersion[i] as number), `version ${i + 1}: reserved ${v.reserved} < wraps`);
      assert.equal(v.reserved % BLOCK, 0, 'the store counts whole blocks');
    }
    const total = versions.reduce((n, v) => n + v.reserved, 0);
    assert.ok(total >= wraps, `store total ${total} < ${wraps} wraps`);
    await assertUnwraps(clients[1] as KpSession, keyId, blobs);
    // Each replica's gauges: what it made under the version it uses now, and the store total as it last saw it.
    const metrics = [await usageMetrics(a.url, keyId), await usageMetrics(b.url, keyId)];
    for (const m of metrics) {
      for (const [version, g] of m) {
        const stored = versions.find((v) => v.id === version);
        assert.ok(stored, 'a gauge names a version of the key');
        assert.ok(g.used >= 1 && g.used <= g.reserved && g.reserved <= stored.reserved, JSON.stringify(g));
      }
    }
    const usedOnSecond = metrics.reduce((n, m) => n + (m.get(versions[1]?.id as string)?.used ?? 0), 0);
    assert.equal(
      usedOnSecond,
      byVersion[1],
      'the replicas together made the wraps answered under the new version',
    );

    await stop(a.service);
    await stop(b.service);
    const rotations = dirs.flatMap((d) => rotationsOf(d, keyId));
    assert.deepEqual(
      rotations.map((r) => [r.subject, r.fromKeyVersion, r.keyVersion, r.reason]),
      [['system:usage-limit', versions[0]?.id, versions[1]?.id, 'count']],
      'one automatic rotation record, by the replica that rotated',
    );
    const verdicts = dirs.map(auditVerify);
    for (const v of verdicts) assert.match(v, /^OK/);
    figures.push(
      `two replicas: ${wraps} wraps (${byVersion.join('/')} by version), ${versions.length} versions, store reserved ${versions.map((v) => v.reserved).join('/')} (total ${total}), metrics a ${JSON.stringify([...(metrics[0] ?? [])])} b ${JSON.stringify([...(metrics[1] ?? [])])}, ${rotations.length} audit rotation`,
    );
  });
});
