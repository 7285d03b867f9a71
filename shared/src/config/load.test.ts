import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { inspect } from 'node:util';
import { z } from 'zod';
import { isKeygateError, type KeygateError } from '../errors/index.js';
import { describeConfigError } from './config-error.js';
import { parseDuration } from './duration.js';
import { loadConfigFile, parseConfig } from './load.js';
import { resolveSecret } from './resolve-secret.js';

const schema = z.strictObject({
  server: z.strictObject({ port: z.number().int().min(1).max(65535), host: z.string().default('127.0.0.1') }),
  mode: z.enum(['a', 'b']),
});

function configErr(fn: () => unknown): KeygateError {
  try {
    fn();
  } catch (err) {
    assert.ok(
      isKeygateError(err) && err.code === 'CONFIG_INVALID',
      `expected CONFIG_INVALID, got ${String(err)}`,
    );
    return err;
  }
  assert.fail('expected CONFIG_INVALID');
}

describe('config loading', () => {
  it('returns a deeply frozen, typed object with defaults applied', () => {
    const cfg = parseConfig('gw.yaml', 'server:\n  port: 8443\nmode: a\n', schema);
    assert.equal(cfg.server.port, 8443);
    assert.equal(cfg.server.host, '127.0.0.1');
    assert.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.server));
  });

  it('names the file, each bad key and what was expected, without echoing values', () => {
    const err = configErr(() =>
      parseConfig('gw.yaml', 'server:\n  port: "hunter2-secret"\n  extra: 1\nmode: c\n', schema),
    );
    const text = describeConfigError(err);
    assert.match(text, /gw\.yaml/);
    assert.match(text, /server\.port: expected number/);
    assert.match(text, /server\.extra: no such key/);
    assert.match(text, /mode: expected one of "a", "b"/);
    assert.ok(!text.includes('hunter2'), 'a value was echoed');
    assert.ok(!err.message.includes('hunter2'));
  });

  it('says what a pattern or a record key expects, in the words of the schema', () => {
    const ids = z.strictObject({
      id: z.string().regex(/^[a-z]+$/, 'an id of a-z'),
      plain: z.string().regex(/^[a-z]+$/),
      roles: z.record(z.string().regex(/^[a-z]+$/, 'an instance of a-z'), z.number()),
    });
    const text = describeConfigError(
      configErr(() => parseConfig('x.yaml', 'id: "A1"\nplain: "B2"\nroles: { C3: 1 }\n', ids)),
    );
    assert.match(text, /id: expected an id of a-z/);
    assert.match(text, /plain: expected text matching \/\^\[a-z\]\+\$\//);
    assert.match(text, /roles\.C3: expected an instance of a-z/);
  });

  it('keeps mapping keys, and the values it is told to, as the text written', () => {
    const loose = z.record(z.string(), z.unknown());
    const text = [
      'ids:',
      '  a: 0123',
      '  b: 1e5',
      '  c: 12.50',
      '  d: true',
      '  e: 0x1F',
      "  f: '0123'",
      '  g: ~',
      '  h:',
      '  i: 12345 # a comment is not part of it',
      '  j: 7',
      'roles:',
      '  0123: [wrap]',
      '  1e5: [wrap]',
      '',
    ].join('\n');
    const paths = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'missing'].map((k) => `ids.${k}`);
    const cfg = parseConfig('x.yaml', text, loose, { asWritten: paths }) as Record<
      string,
      Record<string, unknown>
    >;
    assert.deepEqual(
      { ...cfg.ids },
      {
        a: '0123',
        b: '1e5',
        c: '12.50',
        d: 'true',
        e: '0x1F',
        f: '0123',
        g: null,
        h: null,
        i: '12345',
        j: 7,
      },
    );
    assert.deepEqual(Object.keys(cfg.roles ?? {}), ['0123', '1e5']);
    // Without the option, values are what YAML 1.2 makes of them; keys stay as written.
    const plain = parseConfig('x.yaml', text, loose) as Record<string, Record<string, unknown>>;
    assert.equal(plain.ids?.a, 123);
    assert.equal(plain.ids?.c, 12.5);
    assert.deepEqual(Object.keys(plain.roles ?? {}), ['0123', '1e5']);
  });

  it('reports missing keys and YAML syntax errors', () => {
    assert.match(
      describeConfigError(configErr(() => parseConfig('x.yaml', 'mode: a\n', schema))),
      /server: is required/,
    );
    assert.match(
      describeConfigError(configErr(() => parseConfig('x.yaml', 'a: [1,\n', schema))),
      /valid YAML/,
    );
    assert.match(
      describeConfigError(configErr(() => parseConfig('x.yaml', 'a: 1\na: 2\n', schema))),
      /valid YAML/,
    );
  });

  it('reports a missing file as CONFIG_INVALID naming it', () => {
    const err = configErr(() => loadConfigFile('/nonexistent/keygate.yaml', schema));
    assert.match(describeConfigError(err), /\/nonexistent\/keygate\.yaml.*\n.*ENOENT/);
  });
});

describe('secrets', () => {
  const where = { configFile: 'c.yaml', key: 'hsm.pin' };
  it('come from a value, a file or an environment variable, and never print themselves', () => {
    const dir = mkdtempSync(join(tmpdir(), 'kg-secret-'));
    writeFileSync(join(dir, 'pin'), '1234\n');
    const fromFile = resolveSecret({ file: join(dir, 'pin') }, where, {});
    assert.equal(fromFile.reveal(), '1234');
    const fromEnv = resolveSecret({ env: 'PIN' }, where, { PIN: '5678' });
    assert.equal(fromEnv.reveal(), '5678');
    assert.equal(resolveSecret({ value: 'v' }, where, {}).reveal(), 'v');
    for (const s of [fromFile, fromEnv]) {
      assert.ok(!JSON.stringify({ s }).includes(s.reveal()));
      assert.ok(!String(s).includes(s.reveal()));
      assert.ok(!inspect(s).includes(s.reveal()));
    }
  });

  it('fail with CONFIG_INVALID naming the key, not the value', () => {
    assert.match(
      describeConfigError(configErr(() => resolveSecret({ env: 'NOPE' }, where, {}))),
      /hsm\.pin: environment variable NOPE/,
    );
    assert.match(
      describeConfigError(configErr(() => resolveSecret({}, where, {}))),
      /hsm\.pin: exactly one of/,
    );
    assert.match(
      describeConfigError(configErr(() => resolveSecret({ file: '/nonexistent/pin' }, where, {}))),
      /hsm\.pin/,
    );
  });
});

describe('durations', () => {
  it('parses units', () => {
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('5m'), 300_000);
    assert.equal(parseDuration('2h'), 7_200_000);
    assert.equal(parseDuration('7d'), 604_800_000);
    assert.equal(parseDuration(10), 10);
    assert.throws(() => parseDuration('soon'), RangeError);
    assert.throws(() => parseDuration(-1), RangeError);
  });
});
