import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isKeygateError } from '../errors/index.js';
import { readSettingFile } from './setting-file.js';

describe('readSettingFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-setting-file-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const where = { configFile: '/etc/keygate/x.yaml', key: 'tls.certFile' };

  it('returns the bytes of a readable file', () => {
    const file = join(dir, 'cert.pem');
    writeFileSync(file, '-----BEGIN CERTIFICATE-----\n');
    assert.equal(readSettingFile(file, where).toString(), '-----BEGIN CERTIFICATE-----\n');
  });

  it('turns an unreadable file into CONFIG_INVALID naming the config file, key, path and errno code', () => {
    const missing = join(dir, 'missing.pem');
    assert.throws(
      () => readSettingFile(missing, where, 'secret file'),
      (err: unknown) =>
        isKeygateError(err) &&
        err.code === 'CONFIG_INVALID' &&
        err.detail?.file === where.configFile &&
        err.detail?.problems === `tls.certFile: a readable secret file ${missing} (ENOENT)`,
    );
  });
});
