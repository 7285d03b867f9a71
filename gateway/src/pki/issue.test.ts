import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { createCa, describeCert, issueLeaf } from './issue.js';

describe('built-in PKI', () => {
  it('issues a CA, a server and a client certificate that chain and carry their names', async () => {
    const ca = await createCa('keygate test CA');
    const server = await issueLeaf(ca, {
      commonName: 'gateway',
      usage: 'server',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
    });
    const client = await issueLeaf(ca, {
      commonName: 'prod-eu-1',
      usage: 'client',
      uris: ['spiffe://keygate/cluster/prod-eu-1'],
    });
    const caX = new X509Certificate(ca.certPem);
    const serverX = new X509Certificate(server.certPem);
    const clientX = new X509Certificate(client.certPem);
    assert.ok(caX.ca);
    assert.ok(serverX.verify(caX.publicKey));
    assert.ok(clientX.verify(caX.publicKey));
    assert.equal(serverX.checkHost('localhost'), 'localhost');
    assert.equal(serverX.checkIP('127.0.0.1'), '127.0.0.1');
    assert.match(clientX.subjectAltName ?? '', /URI:spiffe:\/\/keygate\/cluster\/prod-eu-1/);
    assert.deepEqual(describeCert(client.certPem).uris, ['spiffe://keygate/cluster/prod-eu-1']);
    assert.match(client.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
  });
});
