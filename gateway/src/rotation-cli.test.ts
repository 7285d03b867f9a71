import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createGatewayFixture, type GatewayFixture, INSTANCE } from './testing/gateway-fixture.js';

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The rotation commands as operators run them: real processes on SoftHSM2 and the file store.
 * The CLI's fleet store is the in-memory placeholder until the shared one is wired
 * (rotation-command.ts openFleetStore): it knows no rotation, so an unforced disable is refused.
 */
describe('keygate-gateway keys rotate / rotation status / disable-version / enable-version', () => {
  let fx: GatewayFixture;
  let config: string;
  const cli = (...args: string[]): Promise<Ran> =>
    new Promise((resolve) => {
      execFile(
        process.execPath,
        [CLI, ...args],
        { env: { ...process.env, ...fx.softhsm.env } },
        (err, stdout, stderr) => {
          const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
          resolve({ code, stdout, stderr });
        },
      );
    });

  before(async () => {
    fx = await createGatewayFixture();
    config = fx.writeConfig('rotation-cli');
  });
  after(() => fx?.softhsm.cleanup());

  it('rotates, reports, refuses an unproven disable, disables with --force and enables again', async () => {
    const created = await cli('keys', 'create', '--config', config, '--instance', INSTANCE, '--name', 'rot');
    assert.equal(created.code, 0, created.stderr);
    const keyId = (JSON.parse(created.stdout) as { id: string }).id;
    const key = ['--config', config, '--instance', INSTANCE, '--id', keyId];
    const rotated = await cli('keys', 'rotate', ...key);
    assert.equal(rotated.code, 0, rotated.stderr);
    const versions = (JSON.parse(rotated.stdout) as { versions: { id: string }[] }).versions.map((v) => v.id);
    assert.equal(versions.length, 2);
    const [v1, v2] = versions as [string, string];

    const status = await cli('keys', 'rotation', 'status', ...key);
    assert.equal(status.code, 3, 'not yet safe (no rotation known to this fleet store)');
    assert.match(status.stdout, /has no recorded rotation/);

    const refused = await cli('keys', 'disable-version', ...key, '--version', v1);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /ROTATION_NOT_CONVERGED/);
    assert.match(refused.stderr, new RegExp(`no rotation of this key was recorded: .* version ${v1}`));
    assert.match(refused.stderr, /--force/);

    const current = await cli('keys', 'disable-version', ...key, '--version', v2, '--force');
    assert.equal(current.code, 1);
    assert.match(current.stderr, /KEY_VERSION_CURRENT_ERR/);

    const forced = await cli('keys', 'disable-version', ...key, '--version', v1, '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stderr, /disabled with --force/);
    const after1 = JSON.parse(forced.stdout) as { versions: { id: string; disabledAt?: string }[] };
    assert.ok(after1.versions[0]?.disabledAt !== undefined);

    const enabled = await cli('keys', 'enable-version', ...key, '--version', v1);
    assert.equal(enabled.code, 0, enabled.stderr);
    assert.equal(
      (JSON.parse(enabled.stdout) as { versions: { disabledAt?: string }[] }).versions[0]?.disabledAt,
      undefined,
    );

    const usage = await cli('keys', 'disable-version', ...key);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--version/);
  });
});
