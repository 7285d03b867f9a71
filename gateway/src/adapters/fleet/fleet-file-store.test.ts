import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLogger } from '@keygate/shared/log';
import type { NodeRecord } from '../../core/fleet/fleet.js';
import { FleetFileStore } from './fleet-file-store.js';

const logger = createLogger({ level: 'silent', name: 'test' });
const dir = mkdtempSync(join(tmpdir(), 'kg-fleet-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const node: NodeRecord = {
  cluster: 'c1',
  node: 'm1',
  instance: 'inst-a',
  crk: 'crk-1',
  shimVersion: '0.1.0',
  kmsKeyId: 'keygate/inst-a/crk-1/v1',
  keyVersion: 'v1',
  apis: ['v2', 'v1beta1'],
  cacheSize: 3,
  health: 'ok',
  lastSeen: new Date().toISOString(),
  replica: 'gw',
};
const at = new Date();
const use = { cluster: 'c1', instance: 'inst-a', crk: 'crk-1', version: 'v1', op: 'unwrap' as const, at };

describe('fleet file store (fleet.json beside the key store)', () => {
  it('keeps nodes, use counts and rotations across a restart, in a 0600 file', async () => {
    const file = join(dir, 'fleet.json');
    const a = await FleetFileStore.open(file, { logger });
    a.noteNode(node);
    a.noteUse(use);
    a.noteUse(use);
    await a.startRotation({
      instance: 'inst-a',
      crk: 'crk-1',
      fromVersion: 'v1',
      toVersion: 'v2',
      startedAt: at.toISOString(),
      startedBy: 'cli',
    });
    a.noteUse(use);
    await a.close();
    assert.equal(statSync(file).mode & 0o777, 0o600);
    a.noteUse(use); // after close: ignored, never thrown

    const b = await FleetFileStore.open(file, { logger });
    assert.deepEqual(await b.nodes(), [node]);
    const counts = await b.usage({ since: new Date(at.getTime() - 120_000) });
    assert.deepEqual(
      counts.map((u) => [u.cluster, u.version, u.op, u.count]),
      [['c1', 'v1', 'unwrap', 3]],
    );
    assert.equal((await b.rotations('inst-a', 'crk-1'))[0]?.toVersion, 'v2');
    await b.close();
  });

  it('writes only when something changed, and never in read-only mode', async () => {
    const file = join(dir, 'ro', 'fleet.json');
    const ro = await FleetFileStore.open(file, { logger, readOnly: true });
    ro.noteNode(node);
    await ro.flush();
    await ro.close();
    assert.equal(existsSync(file), false);
  });

  it('starts empty from a file that is not a fleet snapshot, and replaces it at the next flush', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(file, '{"version":1,"nodes":[{"cluster":""}]}');
    const s = await FleetFileStore.open(file, { logger });
    assert.deepEqual(await s.nodes(), []);
    s.noteNode(node);
    await s.flush();
    assert.equal((JSON.parse(readFileSync(file, 'utf8')) as { nodes: unknown[] }).nodes.length, 1);
    await s.close();
  });

  it('keeps a rotation another process wrote to the file meanwhile (the CLI beside a running gateway)', async () => {
    const file = join(dir, 'shared.json');
    const gateway = await FleetFileStore.open(file, { logger });
    gateway.noteNode(node);
    await gateway.flush();
    const cli = await FleetFileStore.open(file, { logger });
    await cli.startRotation({
      instance: 'inst-a',
      crk: 'crk-1',
      fromVersion: 'v1',
      toVersion: 'v2',
      startedAt: new Date().toISOString(),
      startedBy: 'cli',
    });
    await cli.close();
    gateway.noteUse(use);
    await gateway.close();
    const later = await FleetFileStore.open(file, { logger, readOnly: true });
    assert.equal((await later.rotations('inst-a', 'crk-1')).length, 1);
    assert.equal((await later.usage({ since: new Date(0) })).length, 1);
  });
});
