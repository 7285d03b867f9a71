import assert from 'node:assert/strict';
import { posix } from 'node:path';
import { describe, it } from 'node:test';
import { fileAudit, gatewayConfigSchema, threadPoolSize } from '@keygate/gateway';
import { inside, readRepo, readYaml } from './infra-files.js';

/** `[Section]` -> key -> every value (systemd keys may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const out = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) {
      section = new Map();
      out.set(s[1] ?? '', section);
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    assert.ok(kv && section, `cannot parse unit line "${line}"`);
    const key = kv[1] ?? '';
    section.set(key, [...(section.get(key) ?? []), kv[2] ?? '']);
  }
  return out;
}

describe('infra/systemd', () => {
  const unit = parseUnit(readRepo('infra/systemd/keygate-gateway.service'));
  const service = unit.get('Service') ?? new Map<string, string[]>();
  const get = (k: string) => service.get(k)?.at(-1);
  const cfg = gatewayConfigSchema.parse(readYaml('infra/systemd/gateway.yaml'));

  it('is a complete unit that runs as keygate with the example config, which is valid', () => {
    assert.ok(unit.has('Unit') && unit.has('Install'));
    assert.equal(get('User'), 'keygate');
    assert.equal(get('Group'), 'keygate');
    const exec = get('ExecStart') ?? '';
    assert.match(exec, /\/gateway\/bin\/keygate-gateway\.js serve --config \/etc\/keygate\/gateway\.yaml$/);
    assert.match(get('ExecStartPre') ?? '', /hsm check --config \/etc\/keygate\/gateway\.yaml$/);
    assert.equal(get('Restart'), 'on-failure');
    assert.equal(cfg.hsm.backend, 'pkcs11');
  });

  it('is hardened: strict read-only system, writable only for the store and the audit log', () => {
    for (const [k, v] of [
      ['ProtectSystem', 'strict'],
      ['NoNewPrivileges', 'yes'],
      ['PrivateTmp', 'yes'],
      ['ProtectHome', 'yes'],
      ['CapabilityBoundingSet', ''],
      ['UMask', '0077'],
    ] as const) {
      assert.equal(get(k), v, k);
    }
    assert.ok(Number(get('LimitNOFILE')) >= 65536);
    const rw = (service.get('ReadWritePaths') ?? []).flatMap((v) => v.split(/\s+/));
    const store = posix.dirname(storeFile(cfg));
    const audit = fileAudit(cfg)?.dir ?? '';
    assert.ok(
      rw.some((p) => inside(store, p)),
      `${store} is writable`,
    );
    assert.ok(
      rw.some((p) => inside(audit, p)),
      `${audit} is writable`,
    );
    assert.ok(!rw.some((p) => inside('/etc/keygate', p)), 'configuration and secrets stay read-only');
    // The audit anchor is rewritten (temp file + rename) beside the log: its folder must be writable.
    const anchorFolder = posix.dirname(fileAudit(cfg)?.anchorFile ?? '/nonexistent/x');
    assert.ok(
      rw.some((p) => inside(anchorFolder, p)),
      `${anchorFolder} (audit.anchorFile's folder) is writable`,
    );
  });

  it('sizes the libuv pool for the HSM sessions', () => {
    const env = new Map((service.get('Environment') ?? []).map((e) => e.split('=', 2) as [string, string]));
    const size = Number(env.get('UV_THREADPOOL_SIZE'));
    assert.ok(cfg.hsm.backend === 'pkcs11' && size >= threadPoolSize(cfg), `UV_THREADPOOL_SIZE ${size}`);
  });

  it('creates the layout the config uses, owned by keygate, with the user defined', () => {
    const lines = readRepo('infra/systemd/keygate-tmpfiles.conf')
      .split('\n')
      .filter((l) => /^d\s/.test(l))
      .map((l) => l.trim().split(/\s+/));
    const dir = (p: string) => lines.find((l) => l[1] === p);
    const anchorFolder = posix.dirname(fileAudit(cfg)?.anchorFile ?? '');
    for (const p of [posix.dirname(storeFile(cfg)), fileAudit(cfg)?.dir ?? '', anchorFolder]) {
      const l = dir(p);
      assert.ok(l, `tmpfiles.d creates ${p}`);
      assert.equal(l[3], 'keygate');
    }
    assert.equal(dir('/etc/keygate')?.[3], 'root', '/etc/keygate is not writable by the service');
    assert.match(readRepo('infra/systemd/keygate-sysusers.conf'), /^u keygate /m);
    const readme = readRepo('infra/systemd/README.md');
    for (const p of ['/etc/keygate', '/var/lib/keygate', '/var/log/keygate/audit'])
      assert.ok(readme.includes(p));
  });
});

/** The JSON store file of a config (these deployments use the file store). */
function storeFile(cfg: { store: { file: string } | { postgres: unknown } }): string {
  assert.ok('file' in cfg.store, 'the file store');
  return cfg.store.file;
}
