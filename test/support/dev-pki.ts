import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, type IssuedCert, issueLeaf } from '@keygate/gateway/pki';

/** Files of a small PKI: one CA, the gateway's server certificate, one client certificate per cluster. */
export interface PkiFiles {
  readonly caFile: string;
  readonly caKeyFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  /** The client certificate's identity (SAN URI). */
  readonly clientIdentity: string;
}

/**
 * Makes (or reuses, when the files exist) a CA, a server certificate for localhost/127.0.0.1 and
 * a client certificate whose SAN URI names `cluster`, under `dir`. Private keys are mode 0600.
 */
export async function ensurePki(dir: string, cluster = 'dev'): Promise<PkiFiles> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const clientIdentity = `spiffe://keygate/cluster/${cluster}`;
  const files: PkiFiles = {
    caFile: join(dir, 'ca.pem'),
    caKeyFile: join(dir, 'ca-key.pem'),
    serverCertFile: join(dir, 'gateway.pem'),
    serverKeyFile: join(dir, 'gateway-key.pem'),
    clientCertFile: join(dir, `client-${cluster}.pem`),
    clientKeyFile: join(dir, `client-${cluster}-key.pem`),
    clientIdentity,
  };
  let ca: IssuedCert;
  if (existsSync(files.caFile) && existsSync(files.caKeyFile)) {
    ca = {
      certPem: readFileSync(files.caFile, 'utf8'),
      keyPem: readFileSync(files.caKeyFile, 'utf8'),
      notAfter: new Date(0),
    };
  } else {
    ca = await createCa('keygate dev CA');
    write(files.caFile, ca.certPem, files.caKeyFile, ca.keyPem);
  }
  if (!existsSync(files.serverCertFile)) {
    const server = await issueLeaf(ca, {
      commonName: 'keygate-gateway',
      usage: 'server',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
    });
    write(files.serverCertFile, server.certPem, files.serverKeyFile, server.keyPem);
  }
  if (!existsSync(files.clientCertFile)) {
    const client = await issueLeaf(ca, { commonName: cluster, usage: 'client', uris: [clientIdentity] });
    write(files.clientCertFile, client.certPem, files.clientKeyFile, client.keyPem);
  }
  return files;
}

function write(certFile: string, certPem: string, keyFile: string, keyPem: string): void {
  writeFileSync(certFile, certPem);
  writeFileSync(keyFile, keyPem, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
}
