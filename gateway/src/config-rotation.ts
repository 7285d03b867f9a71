import { z } from 'zod';
import { duration } from './config-duration.js';

/** Default `rotation.quietWindow`: an hour without any use of an older version. */
export const DEFAULT_QUIET_WINDOW_MS = 60 * 60_000;

/**
 * `rotation:` in the gateway config (docs/gateway.md, docs/rotation.md): guided root-key rotation.
 * `quietWindow`: how long no cluster may have used an older version (unwrap, rewrap or wrap)
 * before `keys rotation status` calls it safe to disable and `keys disable-version` goes through
 * without `--force`.
 */
export const rotationSettingsSchema = z
  .strictObject({
    quietWindow: duration(60_000, 90 * 86_400_000, '1h or 7d').default(DEFAULT_QUIET_WINDOW_MS),
  })
  .prefault({});

export type RotationSettings = z.output<typeof rotationSettingsSchema>;
