import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TestPostgres } from '@keygate/gateway/testing/postgres';
import { GATEWAY_CLI } from '#devstack/paths.js';
import type { PreparedStack } from '#devstack/prepare-stack.js';
import { type AuditLine, readAuditRecords } from './e2e-helpers.js';

/**
 * A replica's config for the multi-replica suite: the dev stack's gateway config with its store,
 * identities and audit chain in `pg`, and its own port.
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
  const signingKey = /^ {2}signingKeyFile: (.*)$/m.exec(base.slice(base.indexOf('\naudit:')))?.[1];
  if (signingKey === undefined) throw new Error('the dev stack config has no audit signing key');
  const audit = `audit:
  target: postgres
  signingKeyFile: ${signingKey}
  replica: gateway-${o.replica}
  checkpointEvery: 500
`;
  // Identities live in the database (copied there by `store migrate-from-file`), managed at run time.
  const text = base
    .replace(/^identities:\n(?: {2}.*\n)+/m, '')
    .replace(/^store:\n(?: {2}.*\n)+/m, store)
    .replace(/^audit:\n(?: {2}.*\n)+/m, audit)
    .replace(/^ {2}port: \d+$/m, `  port: ${o.port}`);
  const file = join(o.home, `gateway-${o.replica}.yaml`);
  writeFileSync(file, text);
  return file;
}

/**
 * Every audit record of the service (exported from the one chain in PostgreSQL into `home`) and
 * the verifier's verdict on the chain ("OK …" or the failure).
 */
export async function haAuditRecords(
  p: PreparedStack,
  config: string,
  home: string,
): Promise<{ events: AuditLine[]; verified: string }> {
  const run = (...args: string[]) => {
    try {
      return execFileSync(process.execPath, [GATEWAY_CLI, ...args], {
        encoding: 'utf8',
        env: { ...process.env, ...p.env },
      });
    } catch (e) {
      const x = e as { stdout?: string; stderr?: string };
      return `${x.stdout ?? ''}${x.stderr ?? ''}`;
    }
  };
  const verified = run('audit', 'verify', '--postgres', '--config', config, '--key', p.auditPublicKeyFile);
  const out = join(home, 'audit-export');
  run('audit', 'export', '--config', config, '--out', out);
  const fileVerdict = run('audit', 'verify', out, '--key', p.auditPublicKeyFile);
  return {
    events: readAuditRecords(out),
    verified: `${verified.split('\n')[0]} | export: ${fileVerdict.split('\n')[0]}`,
  };
}
