import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { describeConfigError, KeygateError, ShimAlg } from '@keygate/shared';
import { isKeygateError } from '@keygate/shared/errors';
import { loadShimSettings, type ShimConfigFile } from './config.js';

const dir = mkdtempSync(join(tmpdir(), 'kg-cfg-'));
after(() => rmSync(dir, { recursive: true, force: true }));
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

/** The keys IBM Cloud Private documents, with values as its docs write them (VERSION 1, inline API_KEY). */
const ICP_KEYS: Readonly<Record<string, string>> = {
  'SERVER_CONFIG.REGION': 'us-south',
  'SERVER_CONFIG.NUM_LEN_BYTES': '32',
  'SERVER_CONFIG.CACHE_TIMEOUT_IN_HOURS': '1',
  'SERVER_CONFIG.RESTART_DELAY_IN_SECONDS': '3',
  'SERVER_CONFIG.UNIX_SOCKET_PATH': '/var/run/icp/keyprotectprovider.sock',
  'SERVER_CONFIG.TOKEN_URL': 'https://iam.example.test/identity/token',
  'SERVER_CONFIG.API_KEY': 'abc',
  'SERVER_CONFIG.HEALTHZ_PATH': '/healthz',
  'SERVER_CONFIG.HEALTHZ_PORT': '20358',
  'SERVER_CONFIG.NEW_DEK': 'false',
  'SERVER_CONFIG.MAX_RETRIES': '2',
  'KP_CONFIG.VERSION': '1',
  'KP_CONFIG.CRK_ID': 'crk-1',
  'KP_CONFIG.URL': 'https://kp.example.test',
  'KP_CONFIG.INSTANCE_ID': 'inst-1',
  'LOGGER.LOG_LEVEL': 'info',
  'LOGGER.LOG_ALL_VALUES': 'false',
};

/** An ICP-style file with `over` replacing (or, with undefined, removing) values, written as given. */
function icpFile(over: Readonly<Record<string, string | undefined>> = {}): string {
  const sections = new Map<string, string[]>();
  for (const [path, value] of Object.entries({ ...ICP_KEYS, ...over })) {
    if (value === undefined) continue;
    const [section = '', key = ''] = path.split('.');
    sections.set(section, [...(sections.get(section) ?? []), `  ${key}: ${value}`]);
  }
  return [...sections].map(([name, lines]) => `${name}:\n${lines.join('\n')}\n`).join('');
}

const settingsOf = (over: Readonly<Record<string, string | undefined>>) =>
  loadShimSettings(write(icpFile(over)), {});

describe('kmsplugin-config.yaml as IBM Cloud Private documents it', () => {
  it("accepts KP_CONFIG.VERSION 1 (ICP's only value) and 2, plain, quoted or with a v", () => {
    for (const v of ['1', '"1"', "'1'", '2', '"2"', 'v1', 'v2', '"v2"', 'V2']) {
      assert.doesNotThrow(() => settingsOf({ 'KP_CONFIG.VERSION': v }), v);
    }
    for (const v of ['3', '"v3"', 'true', '"one"', '1.5']) {
      assert.match(problemsOf(icpFile({ 'KP_CONFIG.VERSION': v })), /KP_CONFIG\.VERSION/, v);
    }
    assert.doesNotThrow(() => settingsOf({ 'KP_CONFIG.VERSION': undefined }), 'VERSION may be left out');
  });

  it('reads every integer key plain or quoted, in decimal', () => {
    const keys = [
      ['SERVER_CONFIG.NUM_LEN_BYTES', 32],
      ['SERVER_CONFIG.CACHE_TIMEOUT_IN_HOURS', 32],
      ['SERVER_CONFIG.RESTART_DELAY_IN_SECONDS', 32],
      ['SERVER_CONFIG.HEALTHZ_PORT', 32],
      ['SERVER_CONFIG.MAX_RETRIES', 7],
    ] as const;
    for (const [path, n] of keys) {
      const [section, key] = path.split('.') as ['SERVER_CONFIG', keyof ShimConfigFile['SERVER_CONFIG']];
      for (const form of [`${n}`, `"${n}"`, `'${n}'`, `" ${n} "`, `+${n}`, `"+${n}"`, `0${n}`, `"0${n}"`]) {
        assert.equal(settingsOf({ [path]: form }).raw[section][key], n, `${path}: ${form}`);
      }
      // Not decimal whole numbers: refused, even where YAML 1.2 would read a number (0x20, 3e1, 32.0).
      for (const bad of [
        `${n}.5`,
        `"${n}.5"`,
        `${n}.0`,
        '0x20',
        '"0x20"',
        '3e1',
        '"x"',
        '""',
        'true',
        '[1]',
      ]) {
        assert.match(
          problemsOf(icpFile({ [path]: bad })),
          new RegExp(path.replace('.', '\\.')),
          `${path}: ${bad}`,
        );
      }
    }
  });

  it("reads every boolean key as YAML 1.2 or YAML 1.1 (as Go plug-ins of ICP's time) spell it, plain or quoted", () => {
    const truthy = ['true', 'True', 'TRUE', 'yes', 'Yes', 'YES', 'on', 'On', 'ON', 'y', 'Y'];
    const falsy = ['false', 'False', 'FALSE', 'no', 'No', 'NO', 'off', 'Off', 'OFF', 'n', 'N'];
    for (const path of ['SERVER_CONFIG.NEW_DEK', 'LOGGER.LOG_ALL_VALUES']) {
      const [section, key] = path.split('.') as ['SERVER_CONFIG', 'NEW_DEK'];
      for (const [words, want] of [
        [truthy, true],
        [falsy, false],
      ] as const) {
        for (const w of words) {
          for (const form of [w, `"${w}"`, `'${w}'`]) {
            assert.equal(settingsOf({ [path]: form }).raw[section][key], want, `${path}: ${form}`);
          }
        }
      }
      for (const bad of ['"maybe"', '1', '"0"', '""', 'tru']) {
        assert.match(
          problemsOf(icpFile({ [path]: bad })),
          new RegExp(path.replace('.', '\\.')),
          `${path}: ${bad}`,
        );
      }
    }
  });

  it('reads CRK_ID, INSTANCE_ID, REGION and API_KEY as the text written, whatever YAML makes of it', () => {
    const forms: readonly (readonly [string, string])[] = [
      ['12345', '12345'],
      ['0123', '0123'],
      ['1e5', '1e5'],
      ['12.50', '12.50'],
      ['0x1F', '0x1F'],
      ['1_000', '1_000'],
      ['"0123"', '0123'],
      ["'12.50'", '12.50'],
      ['true', 'true'],
      ['12345 # comment', '12345'],
    ];
    for (const [written, text] of forms) {
      const s = settingsOf({
        'KP_CONFIG.CRK_ID': written,
        'KP_CONFIG.INSTANCE_ID': written,
        'SERVER_CONFIG.REGION': written,
        'SERVER_CONFIG.API_KEY': written,
      });
      assert.equal(s.raw.KP_CONFIG.CRK_ID, text, written);
      assert.equal(s.raw.KP_CONFIG.INSTANCE_ID, text, written);
      assert.equal(s.raw.SERVER_CONFIG.REGION, text, written);
      assert.equal(s.apiKey.reveal(), text, written);
    }
    const uuid = '3f1c7e52-8c3a-4b1e-9d2f-0a1b2c3d4e5f';
    assert.equal(settingsOf({ 'KP_CONFIG.CRK_ID': uuid }).raw.KP_CONFIG.CRK_ID, uuid);
    assert.equal(settingsOf({ 'KP_CONFIG.INSTANCE_ID': 'a:b' }).raw.KP_CONFIG.INSTANCE_ID, 'a:b');
  });

  it('refuses an id that is missing, null or outside the shared id patterns, naming the key', () => {
    assert.match(problemsOf(icpFile({ 'KP_CONFIG.CRK_ID': '~' })), /KP_CONFIG\.CRK_ID: expected string/);
    assert.match(problemsOf(icpFile({ 'KP_CONFIG.CRK_ID': '' })), /KP_CONFIG\.CRK_ID: expected string/);
    assert.match(problemsOf(icpFile({ 'KP_CONFIG.CRK_ID': 'a:b' })), /KP_CONFIG\.CRK_ID: expected a key id/);
    assert.match(
      problemsOf(icpFile({ 'KP_CONFIG.INSTANCE_ID': '_x' })),
      /KP_CONFIG\.INSTANCE_ID: expected an instance id/,
    );
    assert.match(
      problemsOf(icpFile({ 'KP_CONFIG.INSTANCE_ID': undefined })),
      /KP_CONFIG\.INSTANCE_ID: is required/,
    );
  });

  it('takes an empty REGION as none, and an empty API_KEY as no inline key', () => {
    assert.equal(settingsOf({ 'SERVER_CONFIG.REGION': '' }).raw.SERVER_CONFIG.REGION, '');
    const file = write(`${icpFile({ 'SERVER_CONFIG.API_KEY': '' })}KEYGATE:\n  API_KEY_ENV: KG_KEY\n`);
    assert.equal(loadShimSettings(file, { KG_KEY: 'from-env' }).apiKey.reveal(), 'from-env');
    assert.match(
      problemsOf(icpFile({ 'SERVER_CONFIG.API_KEY': '' })),
      /SERVER_CONFIG\.API_KEY: exactly one of/,
    );
  });
});

describe('kmsplugin-config.yaml', () => {
  it('accepts an IBM Cloud Private file with string values, and applies defaults', () => {
    const s = loadShimSettings(write(ICP), {});
    assert.equal(s.raw.SERVER_CONFIG.NUM_LEN_BYTES, 32);
    assert.equal(s.raw.SERVER_CONFIG.NEW_DEK, false);
    assert.equal(s.raw.SERVER_CONFIG.HEALTHZ_PORT, 8081);
    assert.equal(s.raw.LOGGER.LOG_LEVEL, 'info');
    assert.equal(s.raw.KEYGATE.DEK_MAX_USES, 2 ** 21);
    // Capped well below the 2^32 random-IV encryptions AES-GCM allows per key.
    const capped = write(`${ICP}KEYGATE:\n  DEK_MAX_USES: ${2 ** 24 + 1}\n`);
    assert.throws(
      () => loadShimSettings(capped, {}),
      (e: unknown) => isKeygateError(e) && /DEK_MAX_USES/.test(JSON.stringify(e.toLog())),
    );
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

describe('NODE_NAME (the fleet view)', () => {
  it('takes the node name from NODE_NAME, else the host name, and refuses one the report cannot carry', () => {
    assert.equal(
      loadShimSettings(write(ICP), { NODE_NAME: 'master-1.example' }).nodeName,
      'master-1.example',
    );
    assert.equal(loadShimSettings(write(ICP), {}).nodeName, hostname());
    assert.match(problemsOf(ICP, { NODE_NAME: 'bad name;x=1' }), /NODE_NAME \(environment\)/);
  });
});
