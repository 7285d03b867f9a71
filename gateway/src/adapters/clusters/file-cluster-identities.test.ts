import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { systemRandom } from '@keygate/shared/crypto';
import { createLogger } from '@keygate/shared/log';
import { generateApiKey } from '../../core/auth/api-key.js';
import { type ClusterEntry, changeClustersFile, readClustersFile } from './clusters-file.js';
import { type ClusterFileChange, FileClusterIdentities } from './file-cluster-identities.js';

const logger = createLogger({ level: 'silent', name: 'test' });

function entry(name: string, hash: string): ClusterEntry {
  return {
    name,
    instance: 'inst-a',
    crk: 'crk-1',
    roles: ['wrap', 'unwrap'],
    createdAt: '2026-12-06T00:00:00.000Z',
    gatewayUrls: ['https://gw:8443'],
    cert: { serial: '01', fingerprint256: 'AA', notAfter: '2027-12-06T00:00:00.000Z' },
    apiKeyHashes: [hash],
  };
}

describe('FileClusterIdentities: config identities plus clusters.json, followed at run time', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-clusters-'));
  const file = join(dir, 'clusters.json');
  after(() => rmSync(dir, { recursive: true, force: true }));
  const configuredKey = generateApiKey(systemRandom);
  const configured = [
    {
      name: 'yaml-id',
      apiKeyHashes: [configuredKey.hash],
      certIdentities: ['spiffe://keygate/cluster/yaml'],
      roles: { 'inst-a': ['wrap' as const] },
    },
  ];

  it('a cluster added to the file is found by its API key; removed, its tokens are dropped and refused', async () => {
    const key = generateApiKey(systemRandom);
    const src = new FileClusterIdentities({ configured, file, logger });
    const invalidated: (string | undefined)[] = [];
    const changes: ClusterFileChange[] = [];
    src.onInvalidate((s) => invalidated.push(s));
    src.onChange((c) => changes.push(c));
    assert.equal(await src.findByApiKey(key.apiKey), undefined);
    await changeClustersFile(file, (f) => ({
      ...f,
      changedBy: 'cli:ops',
      clusters: [entry('c1', key.hash)],
    }));
    await src.reload();
    const match = await src.findByApiKey(key.apiKey);
    assert.equal(match?.identity.name, 'c1');
    assert.deepEqual(match?.identity.certIdentities, ['spiffe://keygate/cluster/c1']);
    assert.deepEqual(match?.identity.roles['inst-a'], ['wrap', 'unwrap']);
    assert.equal(src.liveIdentity('c1', match?.apiKeyId)?.name, 'c1');
    // The config's identities still work alongside.
    assert.equal((await src.findByApiKey(configuredKey.apiKey))?.identity.name, 'yaml-id');

    await changeClustersFile(file, (f) => ({ ...f, clusters: [] }));
    await src.reload();
    assert.equal(src.liveIdentity('c1', match?.apiKeyId), undefined);
    assert.equal(await src.findByApiKey(key.apiKey), undefined);
    assert.deepEqual(invalidated, ['c1', 'c1']);
    assert.deepEqual(
      changes.map((c) => [c.added.map((x) => x.name), c.removed.map((x) => x.name), c.changedBy]),
      [
        [['c1'], [], 'cli:ops'],
        [[], ['c1'], 'cli:ops'],
      ],
    );
    src.close();
  });

  it('follows the file by itself once started (fs.watch or the poll)', async () => {
    const key = generateApiKey(systemRandom);
    const src = new FileClusterIdentities({ configured, file, logger, pollMs: 50 });
    src.start();
    const seen = new Promise<ClusterFileChange>((resolve) => src.onChange(resolve));
    await changeClustersFile(file, (f) => ({ ...f, clusters: [entry('c2', key.hash)] }));
    assert.deepEqual(
      (await seen).added.map((c) => c.name),
      ['c2'],
    );
    assert.equal((await src.findByApiKey(key.apiKey))?.identity.name, 'c2');
    src.close();
  });

  it('a configured name wins over a cluster of that name; an invalid file keeps the last good state', async () => {
    const key = generateApiKey(systemRandom);
    const other = generateApiKey(systemRandom);
    await changeClustersFile(file, (f) => ({
      ...f,
      clusters: [entry('yaml-id', other.hash), entry('c3', key.hash)],
    }));
    const src = new FileClusterIdentities({ configured, file, logger });
    assert.equal(await src.findByApiKey(other.apiKey), undefined);
    assert.equal((await src.findByApiKey(key.apiKey))?.identity.name, 'c3');
    writeFileSync(file, '{"version": 1, "clusters": [ {"name": "broken"');
    await src.reload();
    assert.equal((await src.findByApiKey(key.apiKey))?.identity.name, 'c3');
    // Fails closed at start: a file that does not parse stops the gateway from starting.
    assert.throws(() => new FileClusterIdentities({ configured, file, logger }), { code: 'CONFIG_INVALID' });
    src.close();
  });

  it('concurrent changes under the lock all land', async () => {
    writeFileSync(file, '{"version": 1, "clusters": []}');
    await Promise.all(
      ['a1', 'a2', 'a3', 'a4'].map((n) =>
        changeClustersFile(file, (f) => ({
          ...f,
          clusters: [...f.clusters, entry(n, generateApiKey(systemRandom).hash)],
        })),
      ),
    );
    const names = (await readClustersFile(file)).clusters.map((c) => c.name).sort();
    assert.deepEqual(names, ['a1', 'a2', 'a3', 'a4']);
  });
});
