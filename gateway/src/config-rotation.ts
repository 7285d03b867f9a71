import { parseDuration } from '@keygate/shared/config';
import { z } from 'zod';

/** Default `rotation.quietWindow`: an hour without any use of an older version. */
export const DEFAULT_QUIET_WINDOW_MS = 60 * 60_000;

const quietWindow = z.union([z.string(), z.number()]).transform((v, ctx) => {
  try {
    const ms = parseDuration(v);
    if (ms < 60_000 || ms > 90 * 24 * 60 * 60_000) throw new RangeError('between 1m and 90d');
    return ms;
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `a duration like 1h or 7d (${(err as Error).message})` });
    return z.NEVER;
  }
});

/**
 * `rotation:` in the gateway config (docs/gateway.md, docs/rotation.md): guided root-key rotation.
 * `quietWindow`: how long no cluster may have used an older version (unwrap, rewrap or wrap)
 * before `keys rotation status` calls it safe to disable and `keys disable-version` goes through
 * without `--force`.
 */
export const rotationSettingsSchema = z
  .strictObject({ quietWindow: quietWindow.default(DEFAULT_QUIET_WINDOW_MS) })
  .prefault({});

export type RotationSettings = z.output<typeof rotationSettingsSchema>;
