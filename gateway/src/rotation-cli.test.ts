import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { RotationStatus } from './core/fleet/rotation-view.js';
import { describeStatus } from './rotation-command.js';
import { createGatewayFixture, type GatewayFixture, INSTANCE } from './testing/gateway-fixture.js';

const CLI = fileURLToPath(new URL('./cli.js', import.meta.url));

interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The rotation commands as operators run them: real processes on SoftHSM2 and the file store.
 * `keys rotate` records the rotation in the fleet store the gateway shares (fleet.json); no shim
 * has reported and the quiet window has not passed, so an unforced disable is refused.
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

    // The rotation is recorded in the fleet store the gateway shares (fleet.json beside the key
    // store): a later `rotation status` process reads it back.
    const status = await cli('keys', 'rotation', 'status', ...key);
    assert.equal(status.code, 3, 'not yet safe: the quiet window has not passed');
    assert.match(status.stdout, new RegExp(`version ${v1} -> ${v2}, started .* by cli`));
    assert.match(status.stdout, /NOT YET SAFE/);
    assert.match(status.stdout, /quiet for \d+s of the 1h window/);

    const refused = await cli('keys', 'disable-version', ...key, '--version', v1);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /ROTATION_NOT_CONVERGED/);
    assert.match(refused.stderr, /quiet for \d+s of the 1h window/);
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

  it('prints per cluster nodes converged x/y, new version seen, old-version use, then the verdict', () => {
    const rotation = {
      instance: INSTANCE,
      crk: 'crk',
      fromVersion: 'v1',
      toVersion: 'v2',
      startedAt: '2026-12-06T10:00:00.000Z',
      startedBy: 'cli',
    };
    const node = (name: string, keyVersion: string, converged: boolean, stale = false) => ({
      cluster: 'prod-eu',
      node: name,
      keyVersion,
      converged,
      stale,
      lastSeen: '2026-12-06T10:05:00.000Z',
    });
    const blocked: RotationStatus = {
      rotation,
      currentVersion: 'v2',
      clusters: [
        {
          cluster: 'prod-eu',
          nodes: [node('m1', 'v2', true), node('m2', 'v1', false), node('m3', 'v1', false, true)],
          converged: false,
          newVersionSeen: true,
          oldVersionUse: [
            { version: 'v1', wraps: 0, unwraps: 12, rewraps: 1, lastUsed: '2026-12-06T10:04:00.000Z' },
          ],
        },
      ],
      safeToDisable: false,
      reasons: ['cluster prod-eu: node m2 still reports version v1', 'quiet for 0s of the 1h window'],
      quietSince: '2026-12-06T10:05:00.000Z',
    };
    const lines = describeStatus(blocked, { instance: INSTANCE, id: 'crk' }, ['v1']);
    assert.match(
      lines[0] ?? '',
      /version v1 -> v2, started 2026-12-06T10:00:00.000Z by cli; current version v2/,
    );
    assert.ok(
      lines.includes('cluster prod-eu: nodes converged 1/2 (1 stale), new version seen: yes'),
      lines.join('\n'),
    );
    assert.ok(lines.some((l) => /old version v1: 12 unwraps, 1 rewraps, 0 wraps/.test(l)));
    assert.deepEqual(lines.slice(-3), [
      'NOT YET SAFE to disable version(s) older than v2:',
      '  - cluster prod-eu: node m2 still reports version v1',
      '  - quiet for 0s of the 1h window',
    ]);
    const safe = { ...blocked, safeToDisable: true, reasons: [] };
    const ok = describeStatus(safe, { instance: INSTANCE, id: 'crk' }, ['v0', 'v1']);
    assert.match(ok.at(-3) ?? '', /^SAFE TO DISABLE version\(s\) v0, v1 /);
    assert.match(
      ok.at(-1) ?? '',
      /keys disable-version --config FILE --instance inst-a --id crk --version v1$/,
    );
    assert.equal(
      describeStatus(safe, { instance: INSTANCE, id: 'crk' }, []).at(-1),
      'every version older than v2 is disabled already',
    );
  });
});
