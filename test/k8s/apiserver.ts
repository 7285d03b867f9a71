/**
 * A real kube-apiserver for the Kubernetes suite: its files (serving certificate, service-account key,
 * admin token), its arguments, and a launcher that waits for /readyz. Every listener on 127.0.0.1,
 * the process stopped by its own PID (through processes.ts).
 */
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ensurePki } from '#devstack/dev-pki.js';
import { type Service, startService } from '#devstack/processes.js';
import { KubeClient } from './kube-client.js';

export interface ApiserverFiles {
  readonly dir: string;
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  readonly saKeyFile: string;
  readonly tokenFile: string;
  readonly token: string;
}

/** Serving certificate for 127.0.0.1 (own CA), service-account key and an admin static token. */
export async function apiserverFiles(dir: string): Promise<ApiserverFiles> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const pki = await ensurePki(join(dir, 'pki'), 'apiserver');
  const saKeyFile = join(dir, 'sa-key.pem');
  if (!existsSync(saKeyFile)) {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    writeFileSync(saKeyFile, privateKey.export({ format: 'pem', type: 'pkcs1' }).toString(), { mode: 0o600 });
  }
  const token = `kg-admin-${Date.now().toString(36)}`;
  const tokenFile = join(dir, 'tokens.csv');
  // token,user,uid,"group1,group2": system:masters is cluster-admin under RBAC.
  writeFileSync(tokenFile, `${token},kg-admin,uid-kg-admin,"system:masters"\n`, { mode: 0o600 });
  return {
    dir,
    caFile: pki.caFile,
    certFile: pki.serverCertFile,
    keyFile: pki.serverKeyFile,
    saKeyFile,
    tokenFile,
    token,
  };
}

export interface ApiserverOptions {
  readonly bin: string;
  readonly files: ApiserverFiles;
  readonly etcdUrl: string;
  readonly encryptionConfig: string;
  readonly port: number;
  readonly featureGates?: string;
  readonly name?: string;
  readonly logFile: string;
  readonly verbosity?: number;
}

/** The kube-apiserver command line for `o`: loopback only, RBAC, static admin token, KMS config. */
export function apiserverArgs(o: ApiserverOptions): string[] {
  return [
    `--etcd-servers=${o.etcdUrl}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${o.port}`,
    `--cert-dir=${join(o.files.dir, 'cert-dir')}`,
    `--tls-cert-file=${o.files.certFile}`,
    `--tls-private-key-file=${o.files.keyFile}`,
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${o.files.saKeyFile}`,
    `--service-account-signing-key-file=${o.files.saKeyFile}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--authorization-mode=RBAC',
    `--token-auth-file=${o.files.tokenFile}`,
    '--disable-admission-plugins=ServiceAccount',
    '--endpoint-reconciler-type=none',
    `--encryption-provider-config=${o.encryptionConfig}`,
    '--encryption-provider-config-automatic-reload=false',
    ...(o.featureGates ? [`--feature-gates=${o.featureGates}`] : []),
    `--v=${o.verbosity ?? 1}`,
  ];
}

export interface Apiserver {
  readonly service: Service;
  readonly url: string;
  readonly api: KubeClient;
  /** Seconds from spawn to /readyz ok. */
  readonly readySeconds: number;
}

/** Starts kube-apiserver and waits until /readyz answers ok (which includes the KMS check). */
export async function startApiserver(o: ApiserverOptions): Promise<Apiserver> {
  const t0 = Date.now();
  const service = startService(o.name ?? 'kube-apiserver', o.bin, apiserverArgs(o), { logFile: o.logFile });
  const url = `https://127.0.0.1:${o.port}`;
  const api = new KubeClient(url, o.files.caFile, o.files.token);
  const deadline = Date.now() + 180_000;
  let last = '';
  while (Date.now() < deadline) {
    if (service.child.exitCode !== null || service.child.signalCode !== null) break;
    try {
      const r = await api.request('GET', '/readyz');
      if (r.status === 200) {
        // The default namespace is made by a controller shortly after ready.
        while (
          Date.now() < deadline &&
          (await api.request('GET', '/api/v1/namespaces/default')).status !== 200
        )
          await sleep(250);
        return { service, url, api, readySeconds: (Date.now() - t0) / 1000 };
      }
      last = `${r.status} ${r.text.slice(0, 200)}`;
    } catch (err) {
      last = String(err);
    }
    await sleep(500);
  }
  await service.stop();
  throw new Error(
    `kube-apiserver not ready (${last}); log ${o.logFile}; last lines:\n${service.lines.slice(-30).join('\n')}`,
  );
}
