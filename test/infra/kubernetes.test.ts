import assert from 'node:assert/strict';
import { posix } from 'node:path';
import { describe, it } from 'node:test';
import { encryptionConfigV1, encryptionConfigV2 } from '#devstack/encryption-config.js';
import {
  arr,
  at,
  hostPath,
  inside,
  obj,
  parseYaml,
  readRepo,
  readYaml,
  shimDefaults,
  str,
  volumes,
  type Y,
} from './infra-files.js';

const REGENERATE = 'run `npx tsc -b && node infra/kubernetes/generate.mjs`';

function providers(cfg: Y, what: string): Y[] {
  assert.equal(cfg.apiVersion, 'apiserver.config.k8s.io/v1', what);
  assert.equal(cfg.kind, 'EncryptionConfiguration', what);
  const res = arr(cfg.resources, `${what}.resources`).map((r, i) => obj(r, `${what}.resources.${i}`));
  assert.equal(res.length, 1);
  assert.deepEqual(at(res[0], 'resources'), ['secrets']);
  return arr(at(res[0], 'providers'), 'providers').map((p, i) => obj(p, `${what}.providers.${i}`));
}

/** The apiserver flags and host mounts keygate adds, from either form of the kubeadm change. */
interface ApiserverChange {
  readonly args: Map<string, string>;
  /** mountPath -> {hostPath, readOnly} */
  readonly mounts: Map<string, { hostPath: string; readOnly: boolean }>;
}

function fromKubeadmConfig(): ApiserverChange {
  const cfg = readYaml('infra/kubernetes/kubeadm-config.yaml');
  assert.equal(cfg.apiVersion, 'kubeadm.k8s.io/v1beta4');
  assert.equal(cfg.kind, 'ClusterConfiguration');
  const args = new Map<string, string>();
  for (const a of arr(at(cfg, 'apiServer.extraArgs'), 'extraArgs')) {
    const o = obj(a, 'extraArg');
    args.set(str(o.name, 'name'), str(o.value, 'value'));
  }
  const mounts = new Map<string, { hostPath: string; readOnly: boolean }>();
  for (const v of arr(at(cfg, 'apiServer.extraVolumes'), 'extraVolumes')) {
    const o = obj(v, 'extraVolume');
    mounts.set(str(o.mountPath, 'mountPath'), {
      hostPath: str(o.hostPath, 'hostPath'),
      readOnly: o.readOnly === true,
    });
  }
  return { args, mounts };
}

function fromJsonPatch(): ApiserverChange {
  const file = 'infra/kubernetes/patches/kube-apiserver+json.yaml';
  // A JSON patch is a list of operations, not an object.
  const ops = arr(parseYaml(readRepo(file), file), file).map((o, i) => obj(o, `op ${i}`));
  const args = new Map<string, string>();
  const mountByName = new Map<string, { mountPath: string; readOnly: boolean }>();
  const hostByName = new Map<string, string>();
  for (const op of ops) {
    assert.equal(op.op, 'add', 'only appends: nothing kubeadm wrote is replaced');
    const path = str(op.path, 'path');
    if (path === '/spec/containers/0/command/-') {
      const m = /^--([^=]+)=(.*)$/.exec(str(op.value, 'value'));
      assert.ok(m, `${String(op.value)} is --flag=value`);
      args.set(m[1] ?? '', m[2] ?? '');
    } else if (path === '/spec/containers/0/volumeMounts/-') {
      const v = obj(op.value, 'mount');
      mountByName.set(str(v.name, 'name'), {
        mountPath: str(v.mountPath, 'mountPath'),
        readOnly: v.readOnly === true,
      });
    } else if (path === '/spec/volumes/-') {
      const v = obj(op.value, 'volume');
      hostByName.set(str(v.name, 'name'), str(at(v, 'hostPath.path'), 'hostPath.path'));
    } else {
      assert.fail(`unexpected patch path ${path}`);
    }
  }
  const mounts = new Map<string, { hostPath: string; readOnly: boolean }>();
  for (const [name, m] of mountByName) {
    const host = hostByName.get(name);
    assert.ok(host, `volume ${name} is added with its mount`);
    mounts.set(m.mountPath, { hostPath: host, readOnly: m.readOnly });
  }
  assert.equal(hostByName.size, mountByName.size);
  return { args, mounts };
}

describe('infra/kubernetes', () => {
  const { socketPath } = shimDefaults();

  it('encryption-config.yaml and encryption-config-v1.yaml are exactly what the dev stack generator writes', () => {
    assert.equal(
      readRepo('infra/kubernetes/encryption-config.yaml'),
      encryptionConfigV2({ socket: socketPath }),
      `encryption-config.yaml drifted from tools/devstack/src/encryption-config.ts: ${REGENERATE}`,
    );
    assert.equal(
      readRepo('infra/kubernetes/encryption-config-v1.yaml'),
      encryptionConfigV1({ socket: socketPath }),
      `encryption-config-v1.yaml drifted: ${REGENERATE}`,
    );
  });

  it('points KMS v2 at the shim socket with three slashes, keygate first and identity last', () => {
    const p = providers(readYaml('infra/kubernetes/encryption-config.yaml'), 'v2');
    const kms = obj(p[0]?.kms, 'kms');
    assert.equal(kms.apiVersion, 'v2');
    assert.equal(kms.endpoint, `unix://${socketPath}`);
    assert.match(str(kms.endpoint, 'endpoint'), /^unix:\/\/\//);
    assert.ok(!str(kms.name, 'name').includes(':'), 'a v2 name has no ":"');
    assert.equal(kms.cachesize, undefined, 'cachesize is rejected for v2');
    assert.deepEqual(p.at(-1), { identity: {} });

    const v1 = providers(readYaml('infra/kubernetes/encryption-config-v1.yaml'), 'v1');
    assert.equal(at(v1[0], 'kms.apiVersion'), 'v1');
    assert.equal(at(v1[0], 'kms.endpoint'), `unix://${socketPath}`);
    assert.match(readRepo('infra/kubernetes/encryption-config-v1.yaml'), /--feature-gates=KMSv1=true/);
  });

  it('the migration config puts keygate first, keeps the old plug-in for reads, identity last', () => {
    const p = providers(readYaml('infra/kubernetes/encryption-config-migration.yaml'), 'migration');
    const v2 = providers(readYaml('infra/kubernetes/encryption-config.yaml'), 'v2');
    assert.deepEqual(p[0], v2[0], 'the same keygate entry as encryption-config.yaml');
    assert.equal(at(p[1], 'kms.apiVersion'), 'v1');
    assert.notEqual(at(p[1], 'kms.name'), at(p[0], 'kms.name'));
    // ICP's entry exactly as IBM documents it: the name is in every value it stored.
    assert.equal(at(p[1], 'kms.name'), 'KmsPlugin');
    assert.equal(at(p[1], 'kms.endpoint'), 'unix:///var/run/icp/keyprotectprovider.sock');
    assert.equal(at(p[1], 'kms.cachesize'), 100);
    assert.deepEqual(p.at(-1), { identity: {} });
  });

  for (const [what, change] of [
    ['kubeadm-config.yaml', fromKubeadmConfig],
    ['patches/kube-apiserver+json.yaml', fromJsonPatch],
  ] as const) {
    it(`${what}: the flags, the read-only config folder and the shared socket folder`, () => {
      const c = change();
      const file = c.args.get('encryption-provider-config');
      assert.ok(file, '--encryption-provider-config');
      assert.equal(c.args.get('encryption-provider-config-automatic-reload'), 'true');
      assert.equal(c.args.has('feature-gates'), false, 'KMSv1 stays off unless the v1 file is used');
      assert.equal(posix.basename(file), 'encryption-config.yaml');
      // The file is reached through a read-only folder mount (automatic reload needs a folder).
      const [encDir, enc] = [...c.mounts].find(([m]) => inside(file, m)) ?? [];
      assert.ok(enc && encDir, `${file} is inside a mount`);
      assert.equal(enc.readOnly, true);
      assert.notEqual(encDir, file);
      // The socket folder: same host path as the shim's static pod.
      const socketDir = posix.dirname(socketPath);
      const sock = c.mounts.get(socketDir);
      assert.ok(sock, `kube-apiserver mounts ${socketDir}`);
      const pod = readYaml('infra/shim/static-pod.yaml');
      const shimSocket = [...volumes(obj(pod.spec, 'spec'), 'spec').values()].find(
        (v) => v.hostPath !== undefined && hostPath(str(at(v, 'hostPath.path'), 'p')) === hostPath(socketDir),
      );
      assert.ok(shimSocket, 'the shim pod mounts the same host folder');
      assert.equal(hostPath(sock.hostPath), hostPath(socketDir));
    });
  }

  it('kubeadm-config.yaml and the JSON patch make the same change', () => {
    const a = fromKubeadmConfig();
    const b = fromJsonPatch();
    assert.deepEqual([...a.args].sort(), [...b.args].sort());
    assert.deepEqual([...a.mounts].sort(), [...b.mounts].sort());
  });

  it('docs/deploy.md shows the flags, reload and the re-encryption command', () => {
    const doc = readRepo('docs/deploy.md');
    for (const s of [
      '--encryption-provider-config=/etc/kubernetes/enc/encryption-config.yaml',
      '--encryption-provider-config-automatic-reload=true',
      'kubectl get secrets -A -o json | kubectl replace -f -',
      'KMSv1=true',
    ]) {
      assert.ok(doc.includes(s), `docs/deploy.md mentions ${s}`);
    }
  });
});
