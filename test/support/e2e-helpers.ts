import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A TCP port on 127.0.0.1 that was free a moment ago (for a config written before its server starts). */
export { freePort } from '@keygate/gateway/testing/postgres';

/** One line of the gateway's audit log, as the tests read it. */
export interface AuditLine {
  readonly type?: string;
  readonly operation?: string;
  readonly outcome?: string;
  readonly requestId?: string;
  readonly time?: string;
  readonly errorCode?: string;
  readonly certIdentity?: string;
  /** When the caller wanted its answer (x-keygate-timeout-ms). */
  readonly deadline?: string;
  /** A summary of refusals: how many this record stands for. */
  readonly count?: number;
}

/** Every record in an audit folder, in file order (a torn last line is skipped). */
export function readAuditRecords(dir: string): AuditLine[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl'))
    .sort()
    .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n'))
    .filter((l) => l.startsWith('{') && l.endsWith('}'))
    .map((l) => JSON.parse(l) as AuditLine);
}

/**
 * Writes a copy of a dev-stack gateway config that listens on `port` instead of any free port,
 * so a restarted gateway comes back where the shims expect it. Returns the new file.
 */
export function gatewayConfigOnPort(config: string, port: number | string, out: string): string {
  writeFileSync(out, readFileSync(config, 'utf8').replace(/^ {2}port: 0$/m, `  port: ${port}`));
  return out;
}
