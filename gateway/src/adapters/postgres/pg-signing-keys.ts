import type { Logger } from '@keygate/shared/log';
import type { PgDatabase } from './pg-database.js';

/** A signing key another replica announced within this long counts as in use. */
const SIGNING_KEY_WINDOW_HOURS = 24;

/**
 * Records this replica's token signing key ids (keygate_signing_keys) and returns the ids other
 * replicas announced within the window that this one lacks (logged: their tokens are refused
 * here). A database error is logged and gives an empty list: announcing is best effort.
 */
export async function announceSigningKeys(
  db: PgDatabase,
  log: Logger,
  kids: readonly string[],
): Promise<readonly string[]> {
  try {
    await db.query(
      `INSERT INTO keygate_signing_keys (kid) SELECT unnest($1::text[])
       ON CONFLICT (kid) DO UPDATE SET last_seen = now()`,
      [kids],
    );
    const r = await db.query<{ kid: string }>(
      `SELECT kid FROM keygate_signing_keys
        WHERE last_seen > now() - make_interval(hours => $2) AND NOT (kid = ANY($1::text[]))
        ORDER BY kid`,
      [kids, SIGNING_KEY_WINDOW_HOURS],
    );
    const missing = r.rows.map((x) => x.kid);
    if (missing.length > 0) {
      log.warn(
        { missingKids: missing, ownKids: kids },
        'another replica uses token signing keys this replica does not have: its tokens are refused here; give every replica the same tokens.signingKeyFiles',
      );
    }
    return missing;
  } catch (err) {
    log.warn({ reason: String((err as Error).message ?? err) }, 'token signing keys not recorded');
    return [];
  }
}
