import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestPostgres } from '@keygate/gateway/testing/postgres';
import { GATEWAY_CLI } from '#devstack/paths.js';
import type { PreparedStack } from '#devstack/prepare-stack.js';
import { type AuditLine, readAuditRecords } from './e2e-helpers.js';

/**
 * A replica's config for the multi-replica suite: the dev stack's gateway config with its store
 * in `pg`, its own port, and its audit records in its own folder.
 */
export function haGatewayConfig(
  p: PreparedStack,
  pg: TestPostgres,
  o: { readonly port: number; readonly replica: string; readonly home: string },
): string {
  const base = readFileSync(p.gatewayConfig, 'utf8');
  const store = `store:
  postgres:
    url: postgresql://${pg.user}@${pg.host}:${pg.port}/${pg.database}
    passwordFile: ${pg.passwordFile}
    reconcileInterval: 1s
`;
  const text = base
    .replace(/^store:\n(?: {2}.*\n)+/m, store)
    .replace(/^ {2}port: \d+$/m, `  port: ${o.port}`)
    .replace(/^ {2}dir: .*$/m, `  dir: ${auditDir(o.home, o.replica)}`);
  const file = join(o.home, `gateway-${o.replica}.yaml`);
  writeFileSync(file, text);
  return file;
}

function auditDir(home: string, replica: string): string {
  return join(home, `audit-${replica}`);
}

/** Every audit record of the replicas, and the verifier's verdict ("OK …" or the failure). */
export async function haAuditRecords(
  p: PreparedStack,
  _pg: TestPostgres,
  home: string,
): Promise<{ events: AuditLine[]; verified: string }> {
  const events: AuditLine[] = [];
  const verdicts: string[] = [];
  for (const r of ['a', 'b', 'c']) {
    const dir = auditDir(home, r);
    events.push(...readAuditRecords(dir));
    verdicts.push(
      execFileSync(process.execPath, [GATEWAY_CLI, 'audit', 'verify', dir, '--key', p.auditPublicKeyFile], {
        encoding: 'utf8',
      }).split('\n')[0] ?? '',
    );
  }
  return {
    events,
    verified: verdicts.every((v) => v.startsWith('OK')) ? `OK (${verdicts.join('; ')})` : verdicts.join('; '),
  };
}
