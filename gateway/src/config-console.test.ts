import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { describeConfigError } from '@keygate/shared/config';
import { isKeygateError } from '@keygate/shared/errors';
import { loadGatewayConfig } from './config.js';
import { parseListen } from './config-console.js';

const BASE = `server:
  tls: { certFile: s.pem, keyFile: k.pem, clientCaFile: ca.pem }
hsm: { backend: software, keyFile: soft.json, masterKeyFile: m.key }
store: { file: keys.json }
`;

describe('console config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-console-cfg-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const load = (name: string, text: string) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, text);
    return loadGatewayConfig(file);
  };
  const refused = (name: string, text: string): string => {
    try {
      load(name, text);
    } catch (err) {
      assert.ok(isKeygateError(err) && err.code === 'CONFIG_INVALID');
      return describeConfigError(err);
    }
    assert.fail(`${name} was accepted`);
  };

  it('is off when absent; defaults idle timeout 15m, session TTL 8h, 5 failed logins per 5m', () => {
    assert.equal(load('off', BASE).console, undefined);
    const on = load('on', `${BASE}console:\n  listen: 127.0.0.1:9443\n`).console;
    assert.deepEqual(on, {
      listen: '127.0.0.1:9443',
      idleTimeout: 15 * 60_000,
      sessionTtl: 8 * 3_600_000,
      maxFailedLogins: 5,
      loginLockout: 5 * 60_000,
    });
    const set = load(
      'set',
      `${BASE}console: { listen: '[::1]:0', idleTimeout: 30s, sessionTtl: 1h }\n`,
    ).console;
    assert.equal(set?.idleTimeout, 30_000);
    assert.equal(set?.sessionTtl, 3_600_000);
  });

  it('refuses a listen address without a port, an unknown key and a zero idle timeout, naming the field', () => {
    assert.match(refused('noport', `${BASE}console: { listen: localhost }\n`), /console\.listen/);
    assert.match(refused('unknown', `${BASE}console: { listen: 'a:1', colour: red }\n`), /colour/);
    assert.match(
      refused('idle', `${BASE}console: { listen: 'a:1', idleTimeout: 0 }\n`),
      /console\.idleTimeout/,
    );
  });

  it('parses host:port and [v6]:port', () => {
    assert.deepEqual(parseListen('0.0.0.0:8444'), { host: '0.0.0.0', port: 8444 });
    assert.deepEqual(parseListen('[::1]:0'), { host: '::1', port: 0 });
    assert.equal(parseListen('host:70000'), undefined);
    assert.equal(parseListen('::1:80'), undefined);
  });
});
