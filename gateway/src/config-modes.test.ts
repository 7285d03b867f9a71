import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { describeConfigError } from '@keygate/shared/config';
import { isKeygateError } from '@keygate/shared/errors';
import { loadGatewayConfig } from './config.js';
import { hashApiKey } from './core/auth/api-key.js';
import { CLI } from './testing/token-mode.js';

const run = promisify(execFile);

const BASE = `server:
  tls: { certFile: s.pem, keyFile: k.pem, clientCaFile: ca.pem }
hsm: { backend: software, keyFile: soft.json, masterKeyFile: m.key }
store: { file: keys.json }
`;
const IDENTITIES = `identities:
  - name: prod-eu-1
    apiKeyHashes: ['sha256:${'a'.repeat(64)}']
    certIdentities: [spiffe://keygate/cluster/prod-eu-1]
    roles: { team-a: [wrap, unwrap] }
`;
const TOKENS = `tokens:
  signingKeyFiles: [token.pem]
`;
const ACCESS = `access:
  clients:
    - { identity: ops-admin, instances: ['*'], roles: [keys:admin] }
`;

describe('gateway config modes and the key-material CLI commands', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-cfg-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const load = (name: string, text: string) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, text);
    return loadGatewayConfig(file);
  };
  const problems = (name: string, text: string): string => {
    try {
      load(name, text);
    } catch (err) {
      assert.ok(isKeygateError(err) && err.code === 'CONFIG_INVALID');
      return describeConfigError(err);
    }
    assert.fail('config accepted');
  };

  it('accepts token mode with defaults, and the allow-list mode alone', () => {
    const c = load(
      'tokens',
      `${BASE}${IDENTITIES}${TOKENS}audit: { dir: /var/lib/keygate/audit, signingKeyFile: audit.pem }\n`,
    );
    assert.equal(c.tokens?.lifetime, 600_000);
    assert.equal(c.tokens?.issuer, 'keygate');
    assert.deepEqual(
      { ...c.audit },
      {
        target: 'file',
        dir: '/var/lib/keygate/audit',
        signingKeyFile: 'audit.pem',
        anchorFile: '/var/lib/keygate/audit.anchor.json',
        anchorInterval: 1000,
        stdout: false,
        checkpointEvery: 1000,
        checkpointInterval: 60_000,
        maxFileBytes: 64 * 1024 * 1024,
        maxFileAge: 86_400_000,
      },
    );
    assert.equal(load('allow', `${BASE}${ACCESS}`).identities, undefined);
  });

  it('checks instance ids with the shared pattern in identities and access.clients alike', () => {
    const allow = (instances: string) =>
      `${BASE}access:\n  clients:\n    - { identity: x, instances: ${instances} }\n`;
    assert.deepEqual(load('allow-colon', allow(`['a:b', '*']`)).access.clients[0]?.instances, ['a:b', '*']);
    assert.match(
      problems('allow-proto', allow(`['__proto__']`)),
      /access\.clients\.0\.instances\.0.*instance id/,
    );
    assert.match(problems('allow-empty', allow(`['']`)), /instances\.0/);
    const roles = load('tokens-colon', `${BASE}${IDENTITIES.replace('team-a', '"a:b"')}${TOKENS}`).identities;
    assert.deepEqual(Object.keys(roles?.[0]?.roles ?? {}), ['a:b']);
    assert.match(
      problems('tokens-proto', `${BASE}${IDENTITIES.replace('team-a', '_x')}${TOKENS}`),
      /identities\.0\.roles\._x.*instance id/,
    );
  });

  it('refuses identities together with access.clients, and identities without tokens (CONFIG_INVALID)', () => {
    assert.match(problems('both', `${BASE}${IDENTITIES}${TOKENS}${ACCESS}`), /access\.clients/);
    assert.match(problems('no-tokens', `${BASE}${IDENTITIES}`), /tokens/);
    assert.match(
      problems('audit-key', `${BASE}audit: { dir: a, signingKeyFile: b, bogus: 1 }\n`),
      /audit\.bogus/,
    );
    // The anchor must survive the folder being erased: never inside it.
    assert.match(
      problems(
        'anchor-inside',
        `${BASE}audit: { dir: /a/audit, signingKeyFile: b, anchorFile: /a/audit/x.json }\n`,
      ),
      /audit\.anchorFile.*outside audit\.dir/,
    );
  });

  it('apikey create prints a key once and its hash; tokens/audit keygen write 0600 key files', async () => {
    const out = await run(process.execPath, [CLI, 'apikey', 'create', '--name', 'prod-eu-1']);
    const key = /^(kg_[A-Za-z0-9_-]{43})$/m.exec(out.stdout)?.[1];
    assert.ok(key);
    assert.ok(out.stdout.includes(`apiKeyHashes: ['${hashApiKey(key)}']`));
    assert.match(out.stdout, /- name: prod-eu-1/);
    const tok = join(dir, 'token.pem');
    const t = await run(process.execPath, [CLI, 'tokens', 'keygen', tok]);
    assert.match(t.stdout, /kid /);
    assert.match(readFileSync(tok, 'utf8'), /BEGIN PRIVATE KEY/);
    const aud = join(dir, 'audit.pem');
    const a = await run(process.execPath, [CLI, 'audit', 'keygen', aud]);
    assert.match(a.stdout, /^-----BEGIN PUBLIC KEY-----/);
    await assert.rejects(run(process.execPath, [CLI, 'audit', 'keygen', aud]));
  });
});
