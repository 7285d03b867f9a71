import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { describeConfigError, KeygateError, ShimAlg } from '@keygate/shared';
import { loadShimSettings } from './config.js';

const dir = mkdtempSync(join(tmpdir(), 'kg-cfg-'));
let n = 0;

function write(yaml: string): string {
  const file = join(dir, `kmsplugin-config-${n++}.yaml`);
  writeFileSync(file, yaml);
  return file;
}

const ICP = `SERVER_CONFIG:
  REGION: "us-south"
  NUM_LEN_BYTES: "32"
  CACHE_TIMEOUT_IN_HOURS: "1"
  RESTART_DELAY_IN_SECONDS: "3"
  UNIX_SOCKET_PATH: "/tmp/keyprotectprovider.sock"
  TOKEN_URL: "https://iam.example.test/identity/token"
  API_KEY: "abc"
  HEALTHZ_PATH: "/healthz"
  HEALTHZ_PORT: ":8081"
  NEW_DEK: "false"
  MAX_RETRIES: "2"
KP_CONFIG:
  VERSION: "v2"
  CRK_ID: "crk-1"
  URL: "https://kp.example.test"
  INSTANCE_ID: "inst-1"
LOGGER:
  LOG_LEVEL: "INFO"
  LOG_ALL_VALUES: "false"
`;

function problemsOf(yaml: string, env: Record<string, string> = {}): string {
  const file = write(yaml);
  try {
    loadShimSettings(file, env);
  } catch (err) {
    assert.ok(err instanceof KeygateError && err.code === 'CONFIG_INVALID', String(err));
    const text = describeConfigError(err);
    assert.ok(text.includes(file), 'names the file');
    return text;
  }
  assert.fail('expected CONFIG_INVALID');
}

describe('kmsplugin-config.yaml', () => {
  it('accepts an IBM Cloud Private file with string values, and applies defaults', () => {
    const s = loadShimSettings(write(ICP), {});
    assert.equal(s.raw.SERVER_CONFIG.NUM_LEN_BYTES, 32);
    assert.equal(s.raw.SERVER_CONFIG.NEW_DEK, false);
    assert.equal(s.raw.SERVER_CONFIG.HEALTHZ_PORT, 8081);
    assert.equal(s.raw.LOGGER.LOG_LEVEL, 'info');
    assert.equal(s.raw.KEYGATE.DEK_MAX_USES, 2 ** 21);
    assert.equal(s.socketMode, 0o600);
    assert.equal(s.alg, ShimAlg.A256CBC_HS512);
    assert.equal(s.apiKey.reveal(), 'abc');
    assert.equal(String(s.apiKey), '[redacted]');
    assert.deepEqual(s.gatewayUrls, ['https://kp.example.test']);
  });

  it('accepts native YAML types and keygate keys; the API key may come from the environment', () => {
    const yaml = `${ICP.replace('  API_KEY: "abc"\n', '').replace('NUM_LEN_BYTES: "32"', 'NUM_LEN_BYTES: 32').replace('NEW_DEK: "false"', 'NEW_DEK: true')}KEYGATE:
  API_KEY_ENV: KG_KEY
  GATEWAY_URLS: ["https://gw2.example.test"]
  SOCKET_MODE: "0660"
  ALGORITHM: A256GCM
`;
    const s = loadShimSettings(write(yaml), { KG_KEY: 'from-env' });
    assert.equal(s.apiKey.reveal(), 'from-env');
    assert.equal(s.raw.SERVER_CONFIG.NEW_DEK, true);
    assert.equal(s.socketMode, 0o660);
    assert.equal(s.alg, ShimAlg.A256GCM);
    assert.deepEqual(s.gatewayUrls, ['https://kp.example.test', 'https://gw2.example.test']);
  });

  it('names the key of every mistake: missing, wrong type, unknown, conflicting', () => {
    assert.match(problemsOf(ICP.replace('  CRK_ID: "crk-1"\n', '')), /KP_CONFIG\.CRK_ID: is required/);
    assert.match(
      problemsOf(ICP.replace('NUM_LEN_BYTES: "32"', 'NUM_LEN_BYTES: "lots"')),
      /SERVER_CONFIG\.NUM_LEN_BYTES/,
    );
    assert.match(problemsOf(ICP.replace('NEW_DEK: "false"', 'NEW_DEK: "maybe"')), /SERVER_CONFIG\.NEW_DEK/);
    assert.match(problemsOf(`${ICP}  EXTRA: 1\n`), /LOGGER\.EXTRA: no such key/);
    assert.match(
      problemsOf(ICP.replace('URL: "https://kp.example.test"', 'URL: "not a url"')),
      /KP_CONFIG\.URL/,
    );
    assert.match(problemsOf(ICP.replace('  API_KEY: "abc"\n', '')), /SERVER_CONFIG\.API_KEY/);
    assert.match(
      problemsOf(`${ICP}KEYGATE:\n  API_KEY_FILE: /nonexistent/key\n`),
      /SERVER_CONFIG\.API_KEY, KEYGATE\.API_KEY_FILE/,
    );
    assert.match(problemsOf(`${ICP}KEYGATE:\n  CLIENT_CERT_FILE: /x.crt\n`), /KEYGATE\.CLIENT_KEY_FILE/);
    assert.match(
      problemsOf(`${ICP}KEYGATE:\n  CLIENT_CERT_FILE: /nope.crt\n  CLIENT_KEY_FILE: /nope.key\n`),
      /KEYGATE\.CLIENT_CERT_FILE: a readable file/,
    );
    assert.match(
      problemsOf(ICP.replace('  API_KEY: "abc"\n', '').concat('KEYGATE:\n  API_KEY_ENV: NOPE\n')),
      /KEYGATE\.API_KEY_ENV/,
    );
    assert.match(problemsOf('SERVER_CONFIG: [1'), /valid YAML/);
    assert.doesNotMatch(
      problemsOf(ICP.replace('NUM_LEN_BYTES: "32"', 'NUM_LEN_BYTES: "lots"')),
      /abc/,
      'never echoes the API key',
    );
  });
});
