import { KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import type pg from 'pg';
import { MIGRATIONS, type Migration } from './migrations.js';
import { isConnectionError } from './pg-errors.js';

/** pg_advisory_lock key under which migrations run: one replica migrates, the others wait. */
const MIGRATION_LOCK = 0x6b657967; // "keyg"

/**
 * Applies the pending migrations, each in its own transaction, under a session advisory lock (one
 * replica migrates, the others wait). Refuses a schema newer than this gateway knows, and, when
 * `migrate` is false, a schema that needs migrations (STORE_UNAVAILABLE with the reason).
 */
export async function migrateSchema(pool: pg.Pool, log: Logger, migrate: boolean): Promise<void> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    // Session lock: held across the migrations' own transactions; other replicas wait here.
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(
        `CREATE TABLE IF NOT EXISTS keygate_schema (
           version integer PRIMARY KEY,
           name text NOT NULL,
           applied_at timestamptz NOT NULL DEFAULT now())`,
      );
      const done = new Set(
        (await client.query<{ version: number }>('SELECT version FROM keygate_schema')).rows.map(
          (r) => r.version,
        ),
      );
      const newest = Math.max(0, ...done);
      const known = Math.max(...MIGRATIONS.map((m) => m.version));
      if (newest > known) {
        throw new KeygateError('STORE_UNAVAILABLE', {
          detail: {
            reason: `database schema version ${newest} is newer than this gateway knows (${known}): upgrade the gateway`,
          },
        });
      }
      const pending = MIGRATIONS.filter((m) => !done.has(m.version));
      if (pending.length > 0 && !migrate) {
        throw new KeygateError('STORE_UNAVAILABLE', {
          detail: {
            reason: `database schema needs migrations ${pending.map((m) => m.version).join(', ')}: run keygate-gateway db migrate`,
          },
        });
      }
      for (const m of pending) await apply(client, log, m);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch((e: Error) => {
        broken = e;
      });
    }
  } catch (err) {
    if (isConnectionError(err)) broken = err as Error;
    throw err;
  } finally {
    client.release(broken);
  }
}

async function apply(client: pg.PoolClient, log: Logger, m: Migration): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(m.sql);
    await client.query('INSERT INTO keygate_schema (version, name) VALUES ($1, $2)', [m.version, m.name]);
    await client.query('COMMIT');
    log.info({ version: m.version, name: m.name }, 'database migration applied');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
