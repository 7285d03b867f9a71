import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { configError } from '@keygate/shared/config';
import { isKeygateError } from '@keygate/shared/errors';
import { createLogger, type Logger } from '@keygate/shared/log';
import { MIGRATIONS } from './adapters/postgres/migrations.js';
import { PgDatabase } from './adapters/postgres/pg-database.js';
import {
  type ConfigIdentity,
  type IdentityImport,
  importConfigIdentity,
} from './adapters/postgres/pg-identity-import.js';
import { PostgresKeyStore } from './adapters/postgres/pg-key-store.js';
import { describeDatabase, poolConfig } from './adapters/postgres/pg-settings.js';
import { JsonFileKeyStore } from './adapters/store/json-file-store.js';
import { fileStore, type GatewayConfig, loadGatewayConfig, postgresStore } from './config.js';
import type { KeyRecord } from './core/keys/key-store.js';

export const STORE_USAGE = `  keygate-gateway db migrate  --config FILE
  keygate-gateway db status   --config FILE
  keygate-gateway store migrate-from-file --config FILE --from OLD_CONFIG_OR_STORE_JSON [--dry-run]`;

type Print = (line: string) => void;

/** `db …` and `store …`: schema migrations and the move from the JSON file store to PostgreSQL. */
export async function runStoreCommand(argv: readonly string[], out: Print, err: Print): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      from: { type: 'string' },
      'dry-run': { type: 'boolean' },
    },
  });
  const [cmd, sub] = positionals;
  const known =
    (cmd === 'db' && (sub === 'migrate' || sub === 'status')) ||
    (cmd === 'store' && sub === 'migrate-from-file');
  if (!known || values.config === undefined || (cmd === 'store' && values.from === undefined)) {
    err(`usage:\n${STORE_USAGE}`);
    return 2;
  }
  const configFile = values.config;
  const config = loadGatewayConfig(configFile);
  const logger = createLogger({
    level: config.log.level,
    name: 'keygate-gateway',
    destination: process.stderr,
  });
  const db = openDatabase(config, configFile, logger, sub === 'migrate' || sub === 'migrate-from-file');
  try {
    await db.open();
    const status = db.status();
    if (!status.ready) {
      err(`database not usable: ${status.reasons.join('; ')}`);
      return 1;
    }
    if (sub === 'status' || sub === 'migrate') return await schemaReport(db, out);
    return await migrateFromFile(db, String(values.from), values['dry-run'] === true, out, err);
  } finally {
    await db.close();
  }
}

function openDatabase(
  config: GatewayConfig,
  configFile: string,
  logger: Logger,
  migrate: boolean,
): PgDatabase {
  const settings = postgresStore(config);
  if (settings === undefined) {
    throw configError(configFile, [
      { path: 'store.postgres', expected: 'a PostgreSQL store for this command' },
    ]);
  }
  return new PgDatabase({
    pool: { ...poolConfig(settings, configFile), max: 2 },
    describe: describeDatabase(settings),
    logger: logger.child({ component: 'postgres' }),
    reconcileMs: 600_000,
    migrate,
  });
}

async function schemaReport(db: PgDatabase, out: Print): Promise<number> {
  const applied = new Set(await db.schemaVersions());
  for (const m of MIGRATIONS)
    out(`${applied.has(m.version) ? 'applied' : 'pending'}  ${m.version}  ${m.name}`);
  const pending = MIGRATIONS.filter((m) => !applied.has(m.version)).length;
  out(
    pending === 0 ? 'schema is current' : `${pending} migration(s) pending: run keygate-gateway db migrate`,
  );
  return 0;
}

/**
 * Copies every key record of a JSON file store (and the identities of a file-store config) into
 * PostgreSQL. Keys already there with the same
 * record are skipped (a re-run is harmless); a key whose record differs, or whose name is taken by
 * another live key, is a conflict: reported, left alone, exit code 1. The HSM is not touched: the
 * PostgreSQL gateway must use the same token (it holds the key versions' objects).
 */
async function migrateFromFile(
  db: PgDatabase,
  from: string,
  dryRun: boolean,
  out: Print,
  err: Print,
): Promise<number> {
  const { file, identities } = sourceOf(from);
  const source = new JsonFileKeyStore(file);
  await source.open();
  if (!source.status().ready) {
    err(`cannot read ${file}: ${source.status().reasons.join('; ')}`);
    return 1;
  }
  const target = new PostgresKeyStore(db);
  const records = await allKeys(source);
  let copied = 0;
  let present = 0;
  let conflicts = 0;
  for (const k of records) {
    const existing = await target.get(k.instance, k.id, { fresh: true });
    if (existing !== undefined) {
      if (sameKey(existing, k)) present++;
      else {
        conflicts++;
        err(`conflict: ${k.instance}/${k.id} (${k.name}) differs in the database: left as it is there`);
      }
      continue;
    }
    if (dryRun) {
      copied++;
      continue;
    }
    try {
      await target.create(k);
      copied++;
    } catch (e) {
      if (!isKeygateError(e) || e.code !== 'KEY_ALREADY_EXISTS_ERR') throw e;
      conflicts++;
      err(`conflict: ${k.instance}/${k.id}: another live key in the database is named ${k.name}`);
    }
  }
  await target.close();
  out(
    `${dryRun ? 'would copy' : 'copied'} ${copied} key(s) from ${file}; ${present} already present; ${conflicts} conflict(s)`,
  );
  const tally: Record<IdentityImport, number> = { copied: 0, present: 0, conflict: 0 };
  for (const identity of identities) {
    const outcome = dryRun ? 'copied' : await importConfigIdentity(db, identity);
    tally[outcome]++;
    if (outcome === 'conflict') {
      err(
        `conflict: identity ${identity.name} differs in the database (or one of its API keys belongs to another): left as it is there`,
      );
    }
  }
  if (identities.length > 0) {
    out(
      `${dryRun ? 'would copy' : 'copied'} ${tally.copied} identities with their API-key hashes from ${from}; ${tally.present} already present; ${tally.conflict} conflict(s)`,
    );
  }
  return conflicts + tally.conflict === 0 ? 0 : 1;
}

/**
 * The JSON store file named directly, or the `store.file` of a (file-store) gateway config with
 * that config's `identities:` (copied too; their API keys are kept as hashes).
 */
function sourceOf(from: string): { file: string; identities: readonly ConfigIdentity[] } {
  const text = readFileSync(from, 'utf8');
  try {
    const data = JSON.parse(text) as { format?: unknown };
    if (data.format === 1) return { file: from, identities: [] };
  } catch {
    // Not JSON: a gateway config.
  }
  const old = loadGatewayConfig(from);
  const file = fileStore(old);
  if (file === undefined)
    throw configError(from, [{ path: 'store.file', expected: 'a JSON file store to copy from' }]);
  return { file: file.file, identities: old.identities ?? [] };
}

/** Every key of every instance in a file store (its list() is per instance). */
async function allKeys(store: JsonFileKeyStore): Promise<readonly KeyRecord[]> {
  const raw = JSON.parse(readFileSync(store.file, 'utf8')) as { keys: readonly KeyRecord[] };
  const instances = [...new Set(raw.keys.map((k) => k.instance))];
  const out: KeyRecord[] = [];
  for (const i of instances) out.push(...(await store.list(i)));
  return out;
}

function sameKey(a: KeyRecord, b: KeyRecord): boolean {
  return (
    a.name === b.name &&
    a.state === b.state &&
    (a.description ?? '') === (b.description ?? '') &&
    a.creationDate === b.creationDate &&
    a.versions.length === b.versions.length &&
    a.versions.every((v, i) => v.id === b.versions[i]?.id)
  );
}
