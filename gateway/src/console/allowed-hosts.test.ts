import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createCa, issueLeaf } from '../pki/issue.js';
import { consoleAllowedHosts, hostAllowed, normaliseHost } from './allowed-hosts.js';

describe('console allowed hosts', () => {
  it('defaults to the server certificate names and addresses plus the listen address', async () => {
    const ca = await createCa('test ca');
    const leaf = await issueLeaf(ca, {
      commonName: 'gw',
      usage: 'server',
      dnsNames: ['Gateway.Example', '*.ops.example', 'localhost'],
      ipAddresses: ['127.0.0.1', '::1'],
    });
    const hosts = consoleAllowedHosts(undefined, leaf.certPem, '10.0.0.5');
    assert.deepEqual(
      [...hosts].sort(),
      ['*.ops.example', '10.0.0.5', '127.0.0.1', '::1', 'gateway.example', 'localhost'].sort(),
    );
    // A wildcard listen address adds nothing.
    assert.equal(consoleAllowedHosts(undefined, leaf.certPem, '0.0.0.0').has('0.0.0.0'), false);
    // A configured list replaces the default entirely.
    assert.deepEqual(
      [...consoleAllowedHosts(['Console.Example', '[::1]'], leaf.certPem, '10.0.0.5')],
      ['console.example', '::1'],
    );
  });

  it('matches hosts exactly, a wildcard one label deep, and IPv6 in any spelling', () => {
    const allowed = new Set(['gateway.example', '*.ops.example', '::1']);
    assert.equal(hostAllowed(allowed, 'gateway.example'), true);
    assert.equal(hostAllowed(allowed, 'a.ops.example'), true);
    assert.equal(hostAllowed(allowed, 'a.b.ops.example'), false);
    assert.equal(hostAllowed(allowed, 'ops.example'), false);
    assert.equal(hostAllowed(allowed, 'evil.example'), false);
    assert.equal(hostAllowed(allowed, normaliseHost('0:0:0:0:0:0:0:1')), true);
    assert.equal(hostAllowed(allowed, normaliseHost('[::1]')), true);
  });
});
