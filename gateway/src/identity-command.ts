import { parseArgs } from 'node:util';
import { KeygateError } from '@keygate/shared/errors';
import { createLogger, type Logger } from '@keygate/shared/log';
import { PgDatabase } from './adapters/postgres/pg-database.js';
import { PgIdentities } from './adapters/postgres/pg-identities.js';
import { describeDatabase, poolConfig } from './adapters/postgres/pg-settings.js';
import { loadGatewayConfig, postgresStore } from './config.js';
import { ROLES, type Role } from './core/auth/principal.js';

export const IDENTITY_USAGE = `  keygate-gateway identities list   --config FILE
  keygate-gateway identities get    NAME --config FILE
  keygate-gateway identities create NAME --config FILE --cert-identity ID [--cert-identity ID ...]
                                    --role INSTANCE=ROLE[,ROLE...] [--role ...]   ('*=identities:admin' for admins)
  keygate-gateway identities update NAME --config FILE --cert-identity ID ... --role ...   (replaces both)
  keygate-gateway identities delete NAME --config FILE
  keygate-gateway apikey create --config FILE --identity NAME [--label TEXT]
  keygate-gateway apikey revoke ID --config FILE`;

type Print = (line: string) => void;

/**
 * Whether argv is an identity command run against the database (`identities …`, `apikey revoke`,
 * `apikey create --identity`); `apikey create` without `--identity` stays the offline generator.
 */
export function isIdentityCommand(argv: readonly string[]): boolean {
  return (
    argv[0] === 'identities' ||
    (argv[0] === 'apikey' &&
      (argv[1] === 'revoke' || argv.some((a) => a === '--identity' || a.startsWith('--identity='))))
  );
}

/**
 * `keygate-gateway identities …` and `apikey create --identity|revoke`: an operator on the box
 * changes identities in the database named by the config's `store.postgres` (no gateway needs to
 * run; every running replica hears the change). Returns the exit code (2 for usage). The API key
 * is printed once, alone on stdout; everything else goes to `err`, except JSON results.
 */
export async function runIdentityCommand(
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
      'cert-identity': { type: 'string', multiple: true },
      role: { type: 'string', multiple: true },
      identity: { type: 'string' },
      label: { type: 'string' },
    },
  });
  const [cmd, sub, arg] = positionals;
  const usage = () => {
    err(`usage:\n${IDENTITY_USAGE}`);
    return 2;
  };
  if (values.config === undefined || sub === undefined) return usage();
  const needsArg = !(cmd === 'identities' && sub === 'list') && !(cmd === 'apikey' && sub === 'create');
  if (needsArg && arg === undefined) return usage();
  const config = loadGatewayConfig(values.config);
  const settings = postgresStore(config);
  if (settings === undefined || config.identities !== undefined) {
    throw new KeygateError('IDENTITIES_READ_ONLY', {
      detail: {
        reason:
          settings === undefined
            ? 'the store is a file: identities are the config file identities: section'
            : 'the config lists identities: (remove it to keep identities in the database)',
      },
    });
  }
  const log = logger ?? createLogger({ level: 'warn', name: 'keygate-gateway', destination: process.stderr });
  const db = new PgDatabase({
    pool: poolConfig(settings, values.config),
    describe: describeDatabase(settings),
    logger: log.child({ component: 'postgres' }),
  });
  const print = (x: unknown) => out(JSON.stringify(x, null, 2));
  try {
    await db.open();
    const status = db.status();
    if (!status.ready)
      throw new KeygateError('STORE_UNAVAILABLE', { detail: { reason: status.reasons.join('; ') } });
    const ids = new PgIdentities(db, { logger: log.child({ component: 'identities' }) });
    const name = arg as string;
    if (cmd === 'identities') {
      if (sub === 'list') {
        print(await ids.list());
        return 0;
      }
      if (sub === 'get') {
        print(await ids.get(name));
        return 0;
      }
      if (sub === 'delete') {
        await ids.delete(name);
        err(`identity ${name} deleted with its API keys; its tokens are refused from now on`);
        return 0;
      }
      if (sub === 'create' || sub === 'update') {
        const fields = parseFields(values['cert-identity'], values.role);
        if (typeof fields === 'string') {
          err(fields);
          return 2;
        }
        print(sub === 'create' ? await ids.create(name, fields) : await ids.update(name, fields));
        return 0;
      }
      return usage();
    }
    if (cmd === 'apikey' && sub === 'create') {
      if (values.identity === undefined) return usage();
      const { apiKey, record } = await ids.createApiKey(values.identity, values.label);
      err(
        `API key ${record.id} for identity ${record.identity} (shown once; give it to the shim as API_KEY):`,
      );
      out(apiKey);
      return 0;
    }
    if (cmd === 'apikey' && sub === 'revoke') {
      print(await ids.revokeApiKey(name));
      return 0;
    }
    return usage();
  } finally {
    await db.close();
  }
}

/** `--cert-identity` and `--role INSTANCE=ROLE,ROLE` into fields, or the problem as text. */
function parseFields(
  certIdentities: readonly string[] | undefined,
  roleArgs: readonly string[] | undefined,
): { certIdentities: string[]; roles: Record<string, Role[]> } | string {
  if (certIdentities === undefined || certIdentities.length === 0) return '--cert-identity is required';
  if (roleArgs === undefined || roleArgs.length === 0) return '--role INSTANCE=ROLE[,ROLE...] is required';
  const roles: Record<string, Role[]> = Object.create(null);
  for (const r of roleArgs) {
    const eq = r.indexOf('=');
    if (eq <= 0) return `--role ${r}: expected INSTANCE=ROLE[,ROLE...]`;
    const scope = r.slice(0, eq);
    const list = r
      .slice(eq + 1)
      .split(',')
      .map((x) => x.trim())
      .filter((x) => x !== '');
    for (const role of list) {
      if (!(ROLES as readonly string[]).includes(role))
        return `--role ${r}: ${role} is not one of ${ROLES.join(', ')}`;
    }
    roles[scope] = [...new Set([...(roles[scope] ?? []), ...(list as Role[])])];
  }
  return { certIdentities: [...certIdentities], roles };
}
