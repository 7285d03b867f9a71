import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { GATEWAY_CLI } from './paths.js';

/** Files of a small PKI: one CA, the gateway's server certificate, one client certificate per cluster. */
export interface PkiFiles {
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** The client certificate's identity (SAN URI). */
  readonly clientIdentity: string;
  /** The operator's client certificate (identity `spiffe://keygate/cluster/<admin>`). */
  readonly adminCertFile: string;
  readonly adminKeyFile: string;
  readonly adminIdentity: string;
}

/**
 * Makes (or reuses, when the files exist) a CA, a server certificate for localhost/127.0.0.1 and
 * client certificates whose SAN URIs name `cluster` and the operator `admin`, under `dir` — with
 * `keygate-gateway pki`, exactly as an operator would (docs/deploy.md).
 */
export function ensurePki(dir: string, cluster = 'dev', admin = 'ops-admin'): PkiFiles {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caDir = join(dir, 'ca');
  const serverDir = join(dir, 'gateway');
  const clientDir = join(dir, 'clients', cluster);
  const adminDir = join(dir, 'clients', admin);
  const pki = (...args: string[]) =>
    execFileSync(process.execPath, [GATEWAY_CLI, 'pki', ...args], { stdio: 'pipe' });
  if (!existsSync(join(caDir, 'ca.pem'))) pki('ca', '--out', caDir, '--cn', 'keygate dev CA');
  if (!existsSync(join(serverDir, 'server.pem'))) {
    pki(
      'server',
      '--ca',
      caDir,
      '--out',
      serverDir,
      '--dns',
      'localhost',
      '--ip',
      '127.0.0.1',
      '--cn',
      'keygate-gateway',
    );
  }
  if (!existsSync(join(clientDir, 'client.pem')))
    pki('client', '--ca', caDir, '--out', clientDir, '--cluster', cluster);
  if (!existsSync(join(adminDir, 'client.pem')))
    pki('client', '--ca', caDir, '--out', adminDir, '--cluster', admin);
  return {
    caFile: join(caDir, 'ca.pem'),
    serverCertFile: join(serverDir, 'server.pem'),
    serverKeyFile: join(serverDir, 'server-key.pem'),
    clientCertFile: join(clientDir, 'client.pem'),
    clientKeyFile: join(clientDir, 'client-key.pem'),
    clientIdentity: `spiffe://keygate/cluster/${cluster}`,
    adminCertFile: join(adminDir, 'client.pem'),
    adminKeyFile: join(adminDir, 'client-key.pem'),
    adminIdentity: `spiffe://keygate/cluster/${admin}`,
  };
}
