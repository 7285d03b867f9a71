import { parseArgs } from 'node:util';
import { parseDuration } from '@keygate/shared/config';
import { KeygateError } from '@keygate/shared/errors';
import { createLogger, type Logger } from '@keygate/shared/log';
import { PgDatabase } from './adapters/postgres/pg-database.js';
import { describeDatabase, poolConfig } from './adapters/postgres/pg-settings.js';
import { type GatewayConfig, loadGatewayConfig, postgresStore } from './config.js';
import { FLEET_USAGE_WINDOW_MS, type FleetView, fleetView } from './core/fleet/fleet-view.js';
import { buildFleetStore, type FleetRuntime } from './fleet-runtime.js';

export const FLEET_USAGE = `  keygate-gateway fleet --config FILE [--json] [--stale-after 3m]`;

type Print = (line: string) => void;

/**
 * `keygate-gateway fleet`: clusters → nodes with their key_id, key version, health, DEK cache,
 * shim version and last report (STALE past --stale-after, default fleet.staleAfter), and each
 * cluster's wraps, unwraps and rewraps in the last hour. Reads the fleet the gateway keeps
 * (PostgreSQL, or `fleet.json` beside the key store file, written every fleet.flushInterval);
 * never writes it. Returns the exit code (2 for usage).
 */
export async function runFleetCommand(
  argv: readonly string[],
  out: Print,
  err: Print,
  logger?: Logger,
  now: () => Date = () => new Date(),
): Promise<number> {
  const { values } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      json: { type: 'boolean', default: false },
      'stale-after': { type: 'string' },
    },
  });
  if (values.config === undefined) {
    err(`usage:\n${FLEET_USAGE}`);
    return 2;
  }
  let staleAfterMs: number | undefined;
  if (values['stale-after'] !== undefined) {
    try {
      staleAfterMs = parseDuration(values['stale-after']);
    } catch {
      err('--stale-after: a duration like 90s, 3m or 1h');
      return 2;
    }
  }
  const config = loadGatewayConfig(values.config);
  const log = logger ?? createLogger({ level: 'warn', name: 'keygate-gateway', destination: process.stderr });
  const fleet = await openCliFleet(config, values.config, log, true);
  try {
    const at = now();
    const since = new Date(at.getTime() - FLEET_USAGE_WINDOW_MS);
    const [nodes, usage] = await Promise.all([fleet.store.nodes(), fleet.store.usage({ since })]);
    const view = fleetView(nodes, usage, at, staleAfterMs ?? fleet.staleAfterMs, since);
    if (values.json) out(JSON.stringify(view, null, 2));
    else for (const line of formatFleet(view)) out(line);
    return 0;
  } finally {
    await fleet.close();
  }
}

/** "12 s ago", "4 min ago", "3 h ago", "2 d ago" (or "in the future" for a clock ahead). */
export function ago(ms: number): string {
  if (ms < 0) return 'in the future';
  const s = Math.floor(ms / 1000);
  if (s < 120) return `${s} s ago`;
  if (s < 7200) return `${Math.floor(s / 60)} min ago`;
  if (s < 172_800) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86_400)} d ago`;
}

const HEAD = ['NODE', 'INSTANCE/KEY', 'KEY_ID', 'VERSION', 'HEALTH', 'CACHE', 'SHIM', 'LAST SEEN', ''];

/** The fleet as text: one block per cluster, a table of its nodes, its use in the last hour. */
export function formatFleet(view: FleetView): string[] {
  const at = Date.parse(view.at);
  const clusters = [
    ...new Set([...view.nodes.map((n) => n.cluster), ...Object.keys(view.usage.clusters)]),
  ].sort();
  if (clusters.length === 0) return ['no shim has reported yet (docs/fleet.md)'];
  const lines: string[] = [];
  for (const cluster of clusters) {
    const use = view.usage.clusters[cluster];
    const nodes = view.nodes.filter((n) => n.cluster === cluster);
    const stale = nodes.filter((n) => n.stale).length;
    lines.push(
      `cluster ${cluster}: ${nodes.length} node(s)${stale > 0 ? `, ${stale} STALE` : ''}; last hour: ` +
        `${use?.wrap ?? 0} wraps, ${use?.unwrap ?? 0} unwraps, ${use?.rewrap ?? 0} rewraps`,
    );
    const rows = nodes.map((n) => [
      n.node,
      `${n.instance}/${n.crk}`,
      n.kmsKeyId ?? '-',
      n.keyVersion ?? '-',
      n.health,
      String(n.cacheSize),
      n.shimVersion,
      ago(at - Date.parse(n.lastSeen)),
      n.stale ? 'STALE' : '',
    ]);
    if (rows.length > 0) lines.push(...table([HEAD, ...rows]).map((l) => `  ${l}`));
    for (const v of use?.versions ?? []) {
      lines.push(
        `  key ${v.instance}/${v.crk} version ${v.version}: ${v.wrap} wraps, ${v.unwrap} unwraps, ${v.rewrap} rewraps`,
      );
    }
    lines.push('');
  }
  lines.pop();
  return lines;
}

function table(rows: readonly string[][]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return rows.map((r) =>
    r
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd(),
  );
}

/**
 * The fleet store for a CLI command: `fleet.json` beside the key store, or the PostgreSQL fleet
 * (own connection, checked ready). Read only unless the command records something (a rotation,
 * a removed cluster). Closing it closes the connection too.
 */
export async function openCliFleet(
  config: GatewayConfig,
  configFile: string,
  log: Logger,
  readOnly: boolean,
): Promise<FleetRuntime> {
  const settings = postgresStore(config);
  const db =
    settings === undefined
      ? undefined
      : new PgDatabase({
          pool: poolConfig(settings, configFile),
          describe: describeDatabase(settings),
          logger: log.child({ component: 'postgres' }),
        });
  try {
    if (db !== undefined) {
      await db.open();
      const status = db.status();
      if (!status.ready)
        throw new KeygateError('STORE_UNAVAILABLE', { detail: { reason: status.reasons.join('; ') } });
    }
    const fleet = await buildFleetStore(config, { database: db, logger: log, readOnly });
    return {
      ...fleet,
      close: async () => {
        try {
          await fleet.close();
        } finally {
          await db?.close();
        }
      },
    };
  } catch (err) {
    await db?.close();
    throw err;
  }
}
