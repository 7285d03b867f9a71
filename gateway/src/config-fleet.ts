import { z } from 'zod';
import { duration } from './config-duration.js';

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
