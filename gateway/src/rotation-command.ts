import { parseArgs } from 'node:util';
import { INSTANCE_ID_RULE, isInstanceId, isKeyId, KEY_ID_RULE } from '@keygate/shared/api';
import { isKeygateError } from '@keygate/shared/errors';
import { createLogger, type Logger } from '@keygate/shared/log';
import { fileStore, type GatewayConfig, loadGatewayConfig } from './config.js';
import { FleetRotationQueries } from './core/fleet/rotation-queries.js';
import type { RotationStatus } from './core/fleet/rotation-view.js';
import { recordRotation } from './core/fleet/rotations.js';
import { disableVersionGuarded, rotationReasons } from './core/fleet/version-guard.js';
import { buildFleetStore, type FleetRuntime } from './fleet-runtime.js';
import { toKeyResource } from './http/key-json.js';
import { buildKeyRuntime, type KeyRuntime } from './key-runtime.js';
import { reserveThreadPool } from './main.js';

export const ROTATION_USAGE = `  keygate-gateway keys rotate   --config FILE --instance ID --id KEY_ID   (records the rotation)
  keygate-gateway keys rotation status --config FILE --instance ID --id KEY_ID [--json]
  keygate-gateway keys disable-version|enable-version --config FILE --instance ID --id KEY_ID --version V [--force]`;

const SUBCOMMANDS = new Set(['rotate', 'rotation', 'disable-version', 'enable-version']);
/** Exit code of `keys rotation status` while the old versions are not yet safe to disable. */
export const NOT_YET_SAFE = 3;

type Print = (line: string) => void;

/** Whether argv is one of the guided-rotation commands (docs/rotation.md). */
export function isRotationCommand(argv: readonly string[]): boolean {
  return argv[0] === 'keys' && SUBCOMMANDS.has(argv[1] ?? '');
}

/**
 * `keys rotate` (rotates, then records the rotation), `keys rotation status` (exit 0 when the
 * older versions are safe to disable, 3 when not yet) and `keys disable-version|enable-version`
 * (disable refuses with ROTATION_NOT_CONVERGED and the reasons unless --force). Exit 2 for usage.
 */
export async function runRotationCommand(
  argv: readonly string[],
  out: Print,
  err: Print,
  logger?: Logger,
): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      instance: { type: 'string' },
      id: { type: 'string' },
      version: { type: 'string' },
      force: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const [, sub, arg] = positionals;
  const usage = (why: string) => {
    err(`${why}\nusage:\n${ROTATION_USAGE}`);
    return 2;
  };
  if (sub === 'rotation' && arg !== 'status') return usage('keys rotation: expected `status`');
  if (values.config === undefined) return usage('--config is required');
  if (!isInstanceId(values.instance)) return usage(`--instance: expected ${INSTANCE_ID_RULE}`);
  if (values.id === undefined || !isKeyId(values.id)) return usage(`--id: expected ${KEY_ID_RULE}`);
  const versioned = sub === 'disable-version' || sub === 'enable-version';
  if (versioned && (values.version === undefined || !isKeyId(values.version)))
    return usage('--version: a version id of the key (keys get lists them)');
  const config = loadGatewayConfig(values.config);
  reserveThreadPool(config);
  const log =
    logger ?? createLogger({ level: config.log.level, name: 'keygate-gateway', destination: process.stderr });
  const rt = buildKeyRuntime(config, {
    configFile: values.config,
    logger: log,
    createStore: fileStore(config)?.createIfMissing === true,
  });
  let fleetRuntime: FleetRuntime | undefined;
  const args = {
    instance: values.instance,
    id: values.id,
    version: values.version ?? '',
    force: values.force,
  };
  try {
    await rt.store.open();
    // The fleet store the gateway writes (fleet.json beside the key store, or PostgreSQL): only
    // `keys rotate` writes to it (one rotation record, merged with what the gateway wrote).
    fleetRuntime = await buildFleetStore(config, {
      database: rt.database,
      logger: log,
      readOnly: sub !== 'rotate',
    });
    const fleet = fleetRuntime.store;
    if (sub === 'rotate') {
      const key = await rt.keys.rotate(args.instance, args.id);
      await recordRotation(fleet, log, key, 'cli', new Date());
      out(JSON.stringify(toKeyResource(key), null, 2));
      return 0;
    }
    if (sub === 'rotation') return await status(rt, fleetRuntime, config, args, values.json, out);
    if (sub === 'enable-version') {
      const key = await rt.keys.enableVersion(args.instance, args.id, args.version);
      out(JSON.stringify(toKeyResource(key), null, 2));
      return 0;
    }
    return await disable(rt, fleetRuntime, config, args, out, err);
  } finally {
    await fleetRuntime?.close();
    await rt.close();
  }
}

interface Args {
  readonly instance: string;
  readonly id: string;
  readonly version: string;
  readonly force: boolean;
}

function queries(rt: KeyRuntime, fleet: FleetRuntime, config: GatewayConfig): FleetRotationQueries {
  return new FleetRotationQueries({
    getKey: (i, k) => rt.keys.get(i, k),
    fleet: fleet.store,
    staleAfterMs: fleet.staleAfterMs,
    clock: { now: () => new Date() },
    quietWindowMs: config.rotation.quietWindow,
  });
}

async function status(
  rt: KeyRuntime,
  fleet: FleetRuntime,
  config: GatewayConfig,
  a: Args,
  json: boolean,
  out: Print,
): Promise<number> {
  const s = await queries(rt, fleet, config).status(a.instance, a.id);
  if (s === undefined) {
    out(json ? 'null' : `key ${a.id} has no recorded rotation (rotate it with keygate-gateway keys rotate)`);
    return NOT_YET_SAFE;
  }
  if (json) out(JSON.stringify(s, null, 2));
  else {
    const key = await rt.keys.get(a.instance, a.id);
    const to = key.versions.findIndex((v) => v.id === s.rotation.toVersion);
    const older = key.versions.slice(0, Math.max(0, to)).filter((v) => v.disabledAt === undefined);
    for (const line of describeStatus(
      s,
      a,
      older.map((v) => v.id),
    ))
      out(line);
  }
  return s.safeToDisable ? 0 : NOT_YET_SAFE;
}

async function disable(
  rt: KeyRuntime,
  fleet: FleetRuntime,
  config: GatewayConfig,
  a: Args,
  out: Print,
  err: Print,
): Promise<number> {
  const deps = { keys: rt.keys, rotations: queries(rt, fleet, config) };
  try {
    const r = await disableVersionGuarded(deps, a.instance, a.id, a.version, a.force);
    if (r.forced) err(`version ${a.version} disabled with --force (the rotation guard was not asked)`);
    out(JSON.stringify(toKeyResource(r.key), null, 2));
    return 0;
  } catch (e) {
    const reasons = rotationReasons(e);
    if (!isKeygateError(e) || reasons.length === 0) throw e;
    err(`keygate-gateway: ROTATION_NOT_CONVERGED: version ${a.version} is not safe to disable yet:`);
    for (const r of reasons) err(`  - ${r}`);
    err('Fix the above (docs/rotation.md), or pass --force to disable it anyway.');
    return 1;
  }
}

/** `keys rotation status` for people: per cluster, then the verdict. */
export function describeStatus(
  s: RotationStatus,
  a: { instance: string; id: string },
  older: readonly string[],
): string[] {
  const r = s.rotation;
  const lines = [
    `rotation of key ${r.crk} (instance ${r.instance}): version ${r.fromVersion} -> ${r.toVersion}, started ${r.startedAt} by ${r.startedBy}; current version ${s.currentVersion}`,
  ];
  if (s.clusters.length === 0) lines.push('no cluster has reported on or used this key since the rotation');
  for (const c of s.clusters) {
    const fresh = c.nodes.filter((n) => !n.stale);
    const stale = c.nodes.length - fresh.length;
    lines.push(
      `cluster ${c.cluster}: nodes converged ${fresh.filter((n) => n.converged).length}/${fresh.length}` +
        `${stale > 0 ? ` (${stale} stale)` : ''}, new version seen: ${c.newVersionSeen ? 'yes' : 'no'}`,
    );
    for (const n of c.nodes) {
      const state = n.stale ? 'STALE' : n.converged ? 'converged' : 'behind';
      lines.push(`  node ${n.node}: version ${n.keyVersion ?? '-'} ${state}, last seen ${n.lastSeen}`);
    }
    for (const v of c.oldVersionUse) {
      lines.push(
        `  old version ${v.version}: ${v.unwraps} unwraps, ${v.rewraps} rewraps, ${v.wraps} wraps since the rotation (last ${v.lastUsed ?? '-'})`,
      );
    }
  }
  const to = s.rotation.toVersion;
  if (s.safeToDisable && older.length === 0) {
    lines.push(`every version older than ${to} is disabled already`);
  } else if (s.safeToDisable) {
    lines.push(
      `SAFE TO DISABLE version(s) ${older.join(', ')} (old versions quiet since ${s.quietSince ?? '-'}):`,
    );
    for (const v of older) {
      lines.push(
        `  npx keygate-gateway keys disable-version --config FILE --instance ${a.instance} --id ${a.id} --version ${v}`,
      );
    }
  } else {
    lines.push(`NOT YET SAFE to disable version(s) older than ${to}:`);
    for (const reason of s.reasons) lines.push(`  - ${reason}`);
  }
  return lines;
}
