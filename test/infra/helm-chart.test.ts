import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { fileAudit, gatewayConfigSchema, threadPoolSize } from '@keygate/gateway';
import { createCa, issueLeaf } from '@keygate/gateway/pki';
import {
  arr,
  assertK8sObject,
  at,
  cachedHelm,
  dockerfileUid,
  inside,
  mounts,
  obj,
  parseYaml,
  parseYamlStream,
  readRepo,
  readYaml,
  renderChart,
  repoPath,
  str,
  volumes,
  type Y,
} from './infra-files.js';

const CHART = 'infra/helm/keygate-gateway';
const helm = cachedHelm();
const NO_HELM =
  'helm is not built here (infra/helm/build-helm.sh; .ci/run builds it): the chart is checked statically only';

function render(...args: string[]): Y[] {
  const r = renderChart(args);
  assert.ok(r.ok, `helm template ${args.join(' ')} failed:\n${r.stderr}`);
  return parseYamlStream(r.stdout, `helm template ${args.join(' ')}`);
}

const byKind = (objs: Y[], kind: string): Y[] => objs.filter((o) => o.kind === kind);
const one = (objs: Y[], kind: string): Y => {
  const found = byKind(objs, kind);
  assert.equal(found.length, 1, `exactly one ${kind}`);
  return found[0] ?? {};
};

/** Everything the rendered chart must satisfy, for any values. */
function checkRendered(objs: Y[], opts: { replicas: number; serviceMonitor: boolean }): void {
  for (const o of objs) assertK8sObject(o, `${String(o.kind)}`);
  const kinds = new Set(objs.map((o) => String(o.kind)));
  for (const k of ['Deployment', 'Service', 'PodDisruptionBudget', 'ConfigMap']) assert.ok(kinds.has(k), k);
  assert.equal(kinds.has('ServiceMonitor'), opts.serviceMonitor);

  const deploy = one(objs, 'Deployment');
  assert.equal(at(deploy, 'spec.replicas'), opts.replicas);
  const selector = obj(at(deploy, 'spec.selector.matchLabels'), 'selector');
  const podLabels = obj(at(deploy, 'spec.template.metadata.labels'), 'labels');
  for (const [k, v] of Object.entries(selector)) assert.equal(podLabels[k], v, `pod label ${k}`);
  assert.deepEqual(at(one(objs, 'Service'), 'spec.selector'), selector);
  assert.deepEqual(at(one(objs, 'PodDisruptionBudget'), 'spec.selector.matchLabels'), selector);

  const pod = obj(at(deploy, 'spec.template.spec'), 'pod');
  const c = obj(at(pod, 'containers.0'), 'container');
  const podSec = obj(pod.securityContext, 'pod securityContext');
  const sec = obj(c.securityContext, 'securityContext');
  assert.equal(podSec.runAsNonRoot, true);
  assert.equal(podSec.runAsUser, dockerfileUid('infra/docker/gateway.Dockerfile'));
  assert.equal(at(podSec, 'seccompProfile.type'), 'RuntimeDefault');
  assert.equal(sec.allowPrivilegeEscalation, false);
  assert.equal(sec.readOnlyRootFilesystem, true);
  assert.deepEqual(at(sec, 'capabilities.drop'), ['ALL']);
  for (const k of ['requests', 'limits']) assert.ok(at(c, `resources.${k}.memory`), `resources.${k}`);

  // The config the pods run with is a valid gateway config, and every file it names is mounted.
  const cm = one(objs, 'ConfigMap');
  const cfg = gatewayConfigSchema.parse(
    parseYaml(str(obj(cm.data, 'data')['gateway.yaml'], 'gateway.yaml'), 'gateway.yaml'),
  );
  const pgStore = 'postgres' in cfg.store ? cfg.store.postgres : undefined;
  const args = arr(c.args, 'args').map((a) => str(a, 'arg'));
  const configFile = args[args.indexOf('--config') + 1] ?? '';
  const ms = mounts(c, 'gateway');
  const vols = volumes(pod, 'pod');
  const mountOf = (file: string) => ms.find((m) => inside(file, m.mountPath));
  const cfgMount = mountOf(configFile);
  assert.ok(
    cfgMount?.readOnly && at(obj(vols.get(cfgMount.name), 'v'), 'configMap.name') === at(cm, 'metadata.name'),
  );
  const readOnlyFiles = [
    cfg.server.tls.certFile,
    cfg.server.tls.keyFile,
    cfg.server.tls.clientCaFile,
    ...(cfg.hsm.backend === 'pkcs11' ? [cfg.hsm.module, cfg.hsm.pin.file ?? ''] : []),
    ...(cfg.tokens?.signingKeyFiles ?? []),
    cfg.audit?.signingKeyFile ?? '',
    ...(pgStore === undefined
      ? []
      : [pgStore.passwordFile ?? '', ...Object.values(pgStore.ssl ?? {}).filter((v) => v.startsWith('/'))]),
  ];
  for (const f of readOnlyFiles) {
    const m = mountOf(f);
    assert.ok(m, `${f} is inside a mount`);
    assert.ok(m.readOnly, `${f} is mounted read-only`);
  }
  const writable = ms.filter((m) => !m.readOnly).map((m) => m.mountPath);
  for (const [name, v] of vols) {
    if (v.secret !== undefined) assert.equal(at(v, 'secret.defaultMode'), 0o440, `${name} secret mode 0440`);
  }
  if (pgStore !== undefined && fileAudit(cfg) === undefined) {
    // Store, identities and audit in PostgreSQL: nothing of the gateway's state is on a volume.
    assert.deepEqual(writable, ['/tmp'], 'only /tmp is writable');
    assert.equal(vols.has('data'), false, 'no data volume');
  } else checkDataMounts(cfg, mountOf, writable, pgStore !== undefined);

  // Ports: config, container, Service agree.
  const port = obj(at(c, 'ports.0'), 'port');
  assert.equal(port.containerPort, cfg.server.port);
  assert.equal(at(one(objs, 'Service'), 'spec.ports.0.targetPort'), port.name);

  // Probes: every connection needs a client certificate, so no httpGet.
  assert.equal(at(c, 'livenessProbe.tcpSocket.port'), port.name);
  const exec = arr(at(c, 'readinessProbe.exec.command'), 'exec').map((x) => str(x, 'cmd'));
  assert.ok(mountOf(exec[1] ?? '')?.readOnly, 'the probe script is mounted');
  assert.ok(str(obj(cm.data, 'data')['probe.mjs'], 'probe.mjs').includes('KEYGATE_PROBE_URL'));
  const env = new Map(
    arr(c.env, 'env').map((e) => [str(at(e, 'name'), 'name'), obj(e, 'env').value as string | undefined]),
  );
  assert.equal(env.get('KEYGATE_PROBE_URL'), `https://127.0.0.1:${cfg.server.port}/readyz`);
  for (const k of ['KEYGATE_PROBE_CERT', 'KEYGATE_PROBE_KEY', 'KEYGATE_PROBE_CA']) {
    assert.ok(mountOf(env.get(k) ?? '')?.readOnly, `${k} is in a read-only mount`);
  }
  if (cfg.hsm.backend === 'pkcs11') assert.equal(env.get('UV_THREADPOOL_SIZE'), String(threadPoolSize(cfg)));
}

/** File audit logs (one folder per pod) and, with the file store, a writable store folder. */
function checkDataMounts(
  cfg: ReturnType<typeof gatewayConfigSchema.parse>,
  mountOf: (file: string) => ReturnType<typeof mounts>[number] | undefined,
  writable: readonly string[],
  storeInDatabase: boolean,
): void {
  const store = storeInDatabase ? undefined : mountOf(posix.dirname(storeFile(cfg)));
  const audit = mountOf(fileAudit(cfg)?.dir ?? '/nonexistent');
  if (!storeInDatabase) assert.ok(store && !store.readOnly, 'store folder is writable');
  assert.ok(audit && !audit.readOnly, 'audit folder is writable');
  assert.equal(audit.subPathExpr, 'audit/$(POD_NAME)', 'one audit folder per pod (one writer per folder)');
  // The anchor is rewritten (temp file + rename) beside the log: a writable folder of the same pod.
  const anchor = mountOf(posix.dirname(fileAudit(cfg)?.anchorFile ?? '/nonexistent/x'));
  assert.ok(anchor && !anchor.readOnly, 'the audit anchor folder is writable');
  assert.equal(anchor.subPathExpr, 'audit/$(POD_NAME)', 'one anchor per audit folder');
  const expected = [audit.mountPath, '/tmp', ...(store === undefined ? [] : [store.mountPath])];
  assert.deepEqual([...writable].sort(), expected.sort());
}

describe('infra/helm/keygate-gateway', () => {
  it('renders with helm: default values', { skip: helm ? false : NO_HELM }, () => {
    const objs = render();
    checkRendered(objs, { replicas: 3, serviceMonitor: false });
    assert.equal(byKind(objs, 'PersistentVolumeClaim').length, 1);
    const ann = obj(at(one(objs, 'Deployment'), 'spec.template.metadata.annotations'), 'annotations');
    assert.equal(ann['prometheus.io/scrape'], 'true');
    assert.equal(ann['prometheus.io/scheme'], 'https');
  });

  it('renders with helm: ServiceMonitor, HSM library from an init container, one replica', {
    skip: helm ? false : NO_HELM,
  }, () => {
    const objs = render(
      '--set',
      'metrics.serviceMonitor.enabled=true,hsm.library.mode=image,replicaCount=1,persistence.accessModes={ReadWriteOnce}',
      '--set',
      'config.hsm.sessions=16,pdb.maxUnavailable=0',
    );
    checkRendered(objs, { replicas: 1, serviceMonitor: true });
    const sm = one(objs, 'ServiceMonitor');
    assert.equal(at(sm, 'spec.endpoints.0.path'), '/metrics');
    assert.equal(at(sm, 'spec.endpoints.0.scheme'), 'https');
    assert.ok(at(sm, 'spec.endpoints.0.tlsConfig.keySecret.name'), 'scrapes with a client certificate');
    const pod = obj(at(one(objs, 'Deployment'), 'spec.template.spec'), 'pod');
    const init = obj(at(pod, 'initContainers.0'), 'init');
    assert.equal(at(init, 'securityContext.allowPrivilegeEscalation'), false);
    assert.ok(at(volumes(pod, 'pod').get('hsm-library'), 'emptyDir'));
  });

  it('renders with helm: library in the image, no persistence, and refuses bad values', {
    skip: helm ? false : NO_HELM,
  }, () => {
    const objs = render('--set', 'hsm.library.mode=none,config.hsm.module=/usr/lib/softhsm/libsofthsm2.so');
    assert.equal(
      volumes(obj(at(one(objs, 'Deployment'), 'spec.template.spec'), 'pod'), 'pod').has('hsm-library'),
      false,
    );
    const noPvc = render('--set', 'persistence.enabled=false');
    assert.equal(byKind(noPvc, 'PersistentVolumeClaim').length, 0);
    const bad = renderChart(['--set', 'hsm.library.mode=floppy']);
    assert.equal(bad.ok, false);
    assert.match(bad.stderr, /hsm.library.mode must be/);
    const rwo = renderChart(['--set', 'persistence.accessModes={ReadWriteOnce}']);
    assert.equal(rwo.ok, false, 'three replicas cannot share a ReadWriteOnce store');
  });

  it('renders with helm: an external PostgreSQL (store, identities, audit): no volume, no ReadWriteMany', {
    skip: helm ? false : NO_HELM,
  }, () => {
    const objs = render(
      '--set',
      'postgres.enabled=true,postgres.tls.secretName=db-ca,postgres.tls.certKey=tls.crt,postgres.tls.keyKey=tls.key',
      '--set',
      'persistence.accessModes={ReadWriteOnce}',
    );
    checkRendered(objs, { replicas: 3, serviceMonitor: false });
    assert.equal(byKind(objs, 'PersistentVolumeClaim').length, 0, 'no claim');
    const cfg = obj(
      parseYaml(
        str(obj(one(objs, 'ConfigMap').data, 'data')['gateway.yaml'], 'gateway.yaml'),
        'gateway.yaml',
      ),
      'config',
    );
    assert.equal(at(cfg, 'audit.target'), 'postgres');
    assert.equal(cfg.identities, undefined, 'identities live in the database');
    assert.equal(at(cfg, 'store.postgres.ssl.caFile'), '/etc/keygate/db-tls/ca.crt');
    // Keeping YAML identities and file audit logs (per pod) on PostgreSQL is still possible.
    const mixed = render('--set', 'postgres.enabled=true,postgres.identities=false,postgres.audit=false');
    checkRendered(mixed, { replicas: 3, serviceMonitor: false });
    assert.ok(
      obj(
        parseYaml(
          str(obj(one(mixed, 'ConfigMap').data, 'data')['gateway.yaml'], 'gateway.yaml'),
          'gateway.yaml',
        ),
        'config',
      ).identities,
    );
  });

  it('is well-formed without helm: Chart.yaml, values.yaml and every template', () => {
    const chart = readYaml(`${CHART}/Chart.yaml`);
    assert.equal(chart.apiVersion, 'v2');
    assert.equal(chart.name, 'keygate-gateway');
    const values = readYaml(`${CHART}/values.yaml`);
    assert.ok(Number(values.replicaCount) >= 2, 'several replicas by default');
    // The default gateway config is valid as it stands.
    const cfg = gatewayConfigSchema.parse(values.config);
    assert.equal(cfg.hsm.backend, 'pkcs11');
    assert.equal(at(values, 'runAsUser'), dockerfileUid('infra/docker/gateway.Dockerfile'));
    const templates = readdirSync(repoPath(`${CHART}/templates`));
    for (const t of [
      'deployment.yaml',
      'service.yaml',
      'pdb.yaml',
      'configmap.yaml',
      'pvc.yaml',
      'servicemonitor.yaml',
    ]) {
      assert.ok(templates.includes(t), t);
    }
    const deploy = readRepo(`${CHART}/templates/deployment.yaml`);
    for (const s of [
      'readinessProbe:',
      'exec:',
      'tcpSocket:',
      'readOnlyRootFilesystem: true',
      'subPathExpr:',
    ]) {
      assert.ok(deploy.includes(s), `deployment.yaml has ${s}`);
    }
    // Balanced template actions in every template.
    for (const t of templates) {
      const text = readRepo(`${CHART}/templates/${t}`);
      assert.equal((text.match(/\{\{/g) ?? []).length, (text.match(/\}\}/g) ?? []).length, t);
      const opens = (text.match(/\{\{-?\s*(if|with|range|define)\b/g) ?? []).length;
      const ends = (text.match(/\{\{-?\s*end\b/g) ?? []).length;
      assert.equal(opens, ends, `${t}: if/with/range/define blocks are closed`);
    }
  });

  it('the readiness probe script passes on 200 and fails on 503, over mutual TLS', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keygate-probe-'));
    try {
      const ca = await createCa('probe test CA');
      const server = await issueLeaf(ca, {
        commonName: 'gateway',
        usage: 'server',
        dnsNames: ['gateway.svc'],
      });
      const client = await issueLeaf(ca, {
        commonName: 'keygate-probe',
        usage: 'client',
        uris: ['spiffe://keygate/cluster/keygate-probe'],
      });
      const files = {
        cert: join(dir, 'probe.pem'),
        key: join(dir, 'probe-key.pem'),
        ca: join(dir, 'ca.pem'),
      };
      writeFileSync(files.cert, client.certPem);
      writeFileSync(files.key, client.keyPem, { mode: 0o600 });
      writeFileSync(files.ca, ca.certPem);
      let status = 200;
      let sawCert = false;
      const srv = createServer(
        {
          cert: server.certPem,
          key: server.keyPem,
          ca: ca.certPem,
          requestCert: true,
          rejectUnauthorized: true,
        },
        (req, res) => {
          sawCert = (req.socket as TLSSocket).getPeerCertificate().subject?.CN === 'keygate-probe';
          res.writeHead(req.url === '/readyz' ? status : 404).end(JSON.stringify({ status }));
        },
      );
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      const port = (srv.address() as AddressInfo).port;
      const probe = (env: Record<string, string>) =>
        new Promise<{ code: number | null; stderr: string }>((resolve) => {
          const p = spawn(process.execPath, [repoPath(`${CHART}/files/probe.mjs`)], {
            env: { PATH: process.env.PATH ?? '', ...env },
            stdio: ['ignore', 'ignore', 'pipe'],
          });
          let stderr = '';
          p.stderr.on('data', (d: Buffer) => {
            stderr += d.toString();
          });
          p.on('close', (code) => resolve({ code, stderr }));
        });
      const env = {
        KEYGATE_PROBE_URL: `https://127.0.0.1:${port}/readyz`,
        KEYGATE_PROBE_CERT: files.cert,
        KEYGATE_PROBE_KEY: files.key,
        KEYGATE_PROBE_CA: files.ca,
      };
      try {
        const ok = await probe(env);
        assert.equal(ok.code, 0, ok.stderr);
        assert.ok(sawCert, 'the probe presented its client certificate');
        status = 503;
        const unready = await probe(env);
        assert.equal(unready.code, 1);
        assert.match(unready.stderr, /HTTP 503/);
        const noCert = await probe({ ...env, KEYGATE_PROBE_CERT: join(dir, 'missing.pem') });
        assert.equal(noCert.code, 1);
      } finally {
        await new Promise<void>((r) => srv.close(() => r()));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** The JSON store file of a config (these deployments use the file store). */
function storeFile(cfg: { store: { file: string } | { postgres: unknown } }): string {
  assert.ok('file' in cfg.store, 'the file store');
  return cfg.store.file;
}
