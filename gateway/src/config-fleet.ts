import { parseDuration } from '@keygate/shared/config';
import { z } from 'zod';

/** A duration ("30s", "5m", "30d" or milliseconds) between `min` and `max` ms, as milliseconds. */
const duration = (min: number, max: number) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    try {
      const ms = parseDuration(v);
      if (ms < min || ms > max) throw new RangeError(`between ${min / 1000}s and ${max / 1000}s`);
      return ms;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `a duration like 30s or 24h (${(err as Error).message})` });
      return z.NEVER;
    }
  });

const DAY_MS = 86_400_000;

/**
 * `fleet:` — the fleet view (docs/fleet.md): what the gateway keeps of the shims that call it.
 * Optional; every field has a default, so an absent section is the defaults.
 */
export const fleetSchema = z
  .strictObject({
    /** A node whose last report is older than this is flagged STALE (the shim refreshes every 60 s). */
    staleAfter: duration(1000, 30 * DAY_MS).default(180_000),
    /** Reports and use counts are buffered and written this often (and at stop). */
    flushInterval: duration(100, 600_000).default(5000),
    /** Per-minute use counts older than this are deleted. */
    usageRetention: duration(3_600_000, 3660 * DAY_MS).default(30 * DAY_MS),
  })
  .prefault({});

export type FleetSettings = z.output<typeof fleetSchema>;
