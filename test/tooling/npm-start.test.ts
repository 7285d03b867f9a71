import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { StackInfo } from '#devstack/devstack.js';
import { REPO_ROOT } from '#devstack/paths.js';
import { startService } from '#devstack/processes.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';

/**
 * `npm start` as a user runs it (scripts/start.mjs, free ports, its own home): the ready line,
 * stack.json with the operator identity's files, every log line under the program that printed
 * it, and Ctrl-C stopping both programs.
 */
describe('npm start', { skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed' }, () => {
  const home = mkdtempSync(join(tmpdir(), 'kg-npm-start-'));
  after(() => rmSync(home, { recursive: true, force: true }));

  it('labels each line by its program, lists the operator identity, stops on SIGINT', async () => {
    const start = startService('npm-start', process.execPath, [join(REPO_ROOT, 'scripts/start.mjs')], {
      env: {
        KEYGATE_HOME: home,
        KEYGATE_GATEWAY_PORT: '0',
        KEYGATE_HEALTHZ_PORT: '0',
        KEYGATE_CONSOLE_PORT: '0',
      },
    });
    let info: StackInfo;
    try {
      const ready = await start.waitFor(/^keygate ready on /, 90_000);
      // Which Node runs the stack (the gateway and the shim are started with the same one).
      assert.ok(ready.startsWith(`keygate ready on Node.js ${process.version}`), ready);
      assert.equal(ready.includes('past its end of life'), Number(process.versions.node.split('.')[0]) < 22);
      info = JSON.parse(readFileSync(join(home, 'stack.json'), 'utf8')) as StackInfo;
      for (const f of [info.adminApiKeyFile, info.adminCertFile, info.adminKeyFile])
        assert.ok(existsSync(f), `${f} exists`);
      assert.match(readFileSync(info.gatewayConfig, 'utf8'), /- name: ops-admin[\s\S]*keys:admin/);
      await start.waitFor(/operator ops-admin \(keys:admin\)/, 5_000);
      // The console's URL and the admin's API key file are on the ready line (docs/console.md).
      assert.ok(info.consoleUrl?.startsWith('https://127.0.0.1:'), ready);
      assert.ok(
        ready.includes(`console ${info.consoleUrl} (log in with the API key in ${info.adminApiKeyFile})`),
        ready,
      );
      // Ctrl-C.
      start.child.kill('SIGINT');
      assert.equal(await start.exited, 0);
    } finally {
      await start.stop();
    }
    const labelled = (who: string) => start.lines.filter((l) => l.startsWith(`[${who}] `));
    const shim = labelled('shim');
    const gateway = labelled('gateway');
    // Messages only the shim prints, and only the gateway prints.
    const shimOnly = /keygate shim started|health changed|key_id changed|keygate shim stopped/;
    const gatewayOnly = /gateway listening|audit log open|pkcs11 login|gateway stopped/;
    assert.ok(
      shim.some((l) => /keygate shim started/.test(l)),
      start.lines.join('\n'),
    );
    assert.ok(shim.some((l) => /health changed/.test(l)));
    assert.ok(gateway.some((l) => /gateway listening/.test(l)));
    assert.deepEqual(
      gateway.filter((l) => shimOnly.test(l)),
      [],
      'shim lines shown as [gateway]',
    );
    assert.deepEqual(
      shim.filter((l) => gatewayOnly.test(l)),
      [],
      'gateway lines shown as [shim]',
    );
    assert.ok(start.lines.some((l) => l.includes('keygate: stopping shim and gateway')));
    assert.ok(shim.some((l) => /keygate shim stopped/.test(l)));
    assert.ok(gateway.some((l) => /gateway stopped/.test(l)));
    assert.equal(existsSync(info.socket), false, 'the socket is removed');
  });
});
