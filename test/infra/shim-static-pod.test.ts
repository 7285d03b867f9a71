import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { posix } from 'node:path';
import { describe, it } from 'node:test';
import { shimConfigSchema } from '@keygate/shim';
import {
  arr,
  assertK8sObject,
  at,
  dockerfileUid,
  hostPath,
  inside,
  mounts,
  obj,
  readRepo,
  readYaml,
  shimDefaults,
  str,
  volumes,
  type Y,
} from './infra-files.js';

const POD = 'infra/shim/static-pod.yaml';

describe('infra/shim/static-pod.yaml', () => {
  const pod = readYaml(POD);
  const spec = obj(pod.spec, 'spec');
  const containers = arr(spec.containers, 'spec.containers').map((c, i) => obj(c, `containers.${i}`));
  const shim = containers[0] ?? {};
  const defaults = shimDefaults();

  it('is a well-formed control-plane static pod', () => {
    const { kind, apiVersion } = assertK8sObject(pod, POD);
    assert.equal(kind, 'Pod');
    assert.equal(apiVersion, 'v1');
    assert.equal(at(pod, 'metadata.namespace'), 'kube-system');
    assert.equal(containers.length, 1);
    assert.equal(spec.hostNetwork, true, 'kubelet probes must reach the shim on 127.0.0.1');
    assert.equal(spec.dnsPolicy, 'Default', 'cluster DNS may not run before kube-apiserver');
    assert.equal(spec.priorityClassName, 'system-node-critical');
    assert.equal(spec.automountServiceAccountToken, false);
    assert.match(str(shim.image, 'image'), /^[\w./-]+(:[\w.-]+)?$/);
  });

  it('runs non-root with no privileges: fixed uid, no capabilities, no escalation, RuntimeDefault seccomp, read-only root', () => {
    const podSec = obj(spec.securityContext, 'spec.securityContext');
    const sec = obj(shim.securityContext, 'securityContext');
    const uid = dockerfileUid('infra/docker/shim.Dockerfile');
    assert.ok(uid > 0);
    for (const s of [podSec, sec]) {
      assert.equal(s.runAsNonRoot, true);
      assert.equal(s.runAsUser, uid, 'the image USER, the pod runAsUser and the socket folder owner agree');
      assert.equal(at(s, 'seccompProfile.type'), 'RuntimeDefault');
    }
    assert.equal(sec.allowPrivilegeEscalation, false);
    assert.equal(sec.readOnlyRootFilesystem, true);
    assert.notEqual(sec.privileged, true);
    assert.deepEqual(at(sec, 'capabilities.drop'), ['ALL']);
    assert.equal(obj(sec.capabilities, 'capabilities').add, undefined);
    // The host folder is made for that uid at boot (tmpfiles.d), since /var/run is a tmpfs.
    const tmpfiles = readRepo('infra/shim/keygate-shim-tmpfiles.conf')
      .split('\n')
      .filter((l) => /^d\s/.test(l))
      .map((l) => l.trim().split(/\s+/));
    const socketDir = posix.dirname(defaults.socketPath);
    const line = tmpfiles.find((f) => hostPath(f[1] ?? '') === hostPath(socketDir));
    assert.ok(line, `tmpfiles.d creates ${socketDir}`);
    assert.equal(Number(line[3]), uid);
    assert.equal(line[2], '0750');
  });

  it('has resource requests and limits', () => {
    for (const k of ['requests', 'limits']) {
      const r = obj(at(shim, `resources.${k}`), k);
      assert.ok(r.cpu !== undefined && r.memory !== undefined, `${k} for cpu and memory`);
    }
  });

  it('sizes the V8 heap the same on every Node runtime (old space and semi-space both pinned)', () => {
    const env = arr(shim.env, 'env').map((e, i) => obj(e, `env.${i}`));
    const options = str(env.find((e) => e.name === 'NODE_OPTIONS')?.value, 'NODE_OPTIONS');
    // Without --max-semi-space-size, Node 24 lets the young generation grow to 64 MiB semi-spaces
    // beside a 96 MiB old space (heap limit 288 MiB, where Node 20 has 144): under load the shim then
    // spends a quarter of its time in GC (bench K1). Both limits pinned give one heap on 20, 22 and 24.
    const old = Number(/--max-old-space-size=(\d+)/.exec(options)?.[1]);
    const semi = Number(/--max-semi-space-size=(\d+)/.exec(options)?.[1]);
    assert.ok(old > 0 && semi > 0, `NODE_OPTIONS pins old space and semi-space: ${options}`);
    const limit = execFileSync(
      process.execPath,
      ['-e', 'process.stdout.write(String(require("v8").getHeapStatistics().heap_size_limit))'],
      { env: { ...process.env, NODE_OPTIONS: options }, encoding: 'utf8' },
    );
    // V8's limit is the old space plus three semi-spaces (two for the scavenger, one for new large objects).
    assert.equal(Number(limit) / 1024 / 1024, old + 3 * semi, `heap limit on Node ${process.version}`);
    // The memory limit leaves room for the heap plus Node's own (about 40 MiB) and buffers.
    const limitMi = Number(/^(\d+)Mi$/.exec(str(at(shim, 'resources.limits.memory'), 'limit'))?.[1]);
    assert.ok(limitMi >= old + 3 * semi + 40, `resources.limits.memory ${limitMi}Mi`);
  });

  it('probes /livez and HEALTHZ_PATH on 127.0.0.1:HEALTHZ_PORT, the shim defaults', () => {
    const probe = (name: string) => obj(at(shim, `${name}.httpGet`), name);
    for (const name of ['livenessProbe', 'startupProbe']) {
      const p = probe(name);
      assert.equal(p.path, '/livez');
      assert.equal(p.port, defaults.healthzPort);
      assert.equal(p.host, '127.0.0.1');
    }
    const r = probe('readinessProbe');
    assert.equal(r.path, defaults.healthzPath);
    assert.equal(r.port, defaults.healthzPort);
    assert.equal(r.host, '127.0.0.1');
  });

  it('shares only the socket folder writable with the host; config and certificates are read-only', () => {
    const vols = volumes(spec, 'spec');
    const ms = mounts(shim, 'shim');
    const socketDir = posix.dirname(defaults.socketPath);
    const hostMounts = ms.filter((m) => vols.get(m.name)?.hostPath !== undefined);
    const writable = hostMounts.filter((m) => !m.readOnly);
    assert.deepEqual(
      writable.map((m) => m.mountPath),
      [socketDir],
      'the socket folder is the only writable host path',
    );
    const socketVol = obj(vols.get(writable[0]?.name ?? ''), 'socket volume');
    assert.equal(hostPath(str(at(socketVol, 'hostPath.path'), 'hostPath.path')), hostPath(socketDir));
    assert.equal(at(socketVol, 'hostPath.type'), 'Directory');
    // Everything else that is writable is a size-limited emptyDir.
    for (const m of ms.filter((x) => !x.readOnly && !hostMounts.includes(x))) {
      assert.ok(at(obj(vols.get(m.name), m.name), 'emptyDir.sizeLimit'), `${m.name} is a bounded emptyDir`);
    }
    // The config file the container is started with lies in a read-only mount.
    const args = arr(shim.args, 'args').map((a) => str(a, 'arg'));
    const config = args[args.indexOf('--config') + 1] ?? '';
    const configMount = ms.find((m) => inside(config, m.mountPath));
    assert.ok(configMount?.readOnly, `${config} is in a read-only mount`);
    // The image's default command names the same file.
    assert.match(readRepo('infra/docker/shim.Dockerfile'), new RegExp(`CMD .*"${config}"`));
  });

  it('ships a kmsplugin-config.yaml that the shim accepts, with the same socket, port and paths', () => {
    const sample = readYaml('infra/shim/kmsplugin-config.yaml');
    const cfg = shimConfigSchema.parse(sample);
    assert.equal(cfg.SERVER_CONFIG.UNIX_SOCKET_PATH, defaults.socketPath);
    assert.equal(cfg.SERVER_CONFIG.HEALTHZ_PORT, defaults.healthzPort);
    assert.equal(cfg.SERVER_CONFIG.HEALTHZ_PATH, defaults.healthzPath);
    const configMount = mounts(shim, 'shim').find(
      (m) => m.readOnly && m.mountPath.startsWith('/etc/keygate'),
    );
    assert.ok(configMount);
    const files = [
      cfg.SERVER_CONFIG.TOKEN_URL_CA_FILE,
      cfg.KP_CONFIG.KP_CA_FILE,
      cfg.KEYGATE.CLIENT_CERT_FILE,
      cfg.KEYGATE.CLIENT_KEY_FILE,
      cfg.KEYGATE.API_KEY_FILE,
    ];
    for (const f of files) {
      assert.ok(
        f !== undefined && inside(f, configMount.mountPath),
        `${f} is inside ${configMount.mountPath}`,
      );
    }
  });

  it('documents the same paths in docs/deploy.md', () => {
    const doc = readRepo('docs/deploy.md');
    assert.ok(doc.includes(`unix://${defaults.socketPath}`));
    assert.ok(doc.includes(String(defaults.healthzPort)));
    assert.ok(doc.includes('WaitForReady'));
    const y: Y = pod;
    assert.ok(doc.includes(str(at(y, 'metadata.name'), 'name')));
  });
});
