/**
 * Start probe for K1's start profile, loaded into the shim with `node --import` (bench only; the
 * shim's code is unchanged). It writes JSON lines `{"msg":"start probe","probe":…,"t":epoch ms}`
 * to the process's stderr (the same log file as the shim's own lines):
 *   node ready   — this module runs: Node's bootstrap is done, the shim's modules not yet loaded;
 *   config read  — the first read of the --config file: the shim's module graph has loaded;
 *   request / response — the first gateway request of each path (undici's diagnostics channels):
 *                  the token request is sent once the config is parsed and the client built.
 * lib/start-profile.ts turns these and the shim's log lines into the profile.
 */
import { channel } from 'node:diagnostics_channel';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

function emit(probe: string, extra: Record<string, unknown> = {}): void {
  const t = performance.timeOrigin + performance.now();
  fs.writeSync(2, `${JSON.stringify({ msg: 'start probe', probe, t, ...extra })}\n`);
}

emit('node ready', { origin: performance.timeOrigin });

const i = process.argv.indexOf('--config');
const configFile = i >= 0 ? process.argv[i + 1] : undefined;
const original = fs.readFileSync;
let configSeen = false;
function probedReadFileSync(this: unknown, ...args: unknown[]): unknown {
  if (!configSeen && configFile !== undefined && args[0] === configFile) {
    configSeen = true;
    emit('config read');
  }
  return Reflect.apply(original, this, args);
}
Object.assign(fs, { readFileSync: probedReadFileSync });
// ESM named imports of node:fs (`import { readFileSync } from 'node:fs'`) see the patched function.
syncBuiltinESMExports();

interface UndiciRequest {
  readonly origin?: unknown;
  readonly path?: unknown;
}
const seen = new Set<string>();
const pathOf = (m: unknown): string => {
  const r = (m as { request?: UndiciRequest }).request;
  return typeof r?.path === 'string' ? (r.path.split('?')[0] ?? '') : '';
};
const once = (kind: string, path: string) => {
  const k = `${kind} ${path}`;
  if (seen.has(k)) return;
  seen.add(k);
  emit(kind, { path });
};
channel('undici:request:create').subscribe((m) => once('request', pathOf(m)));
channel('undici:request:headers').subscribe((m) => once('response', pathOf(m)));
