import { formatDuration, parseDuration } from '@keygate/shared/config';
import { z } from 'zod';

/**
 * A config duration ("30s", "24h", "7d" or milliseconds) between `min` and `max` ms, as milliseconds;
 * anything else is a config issue that shows `example` ("a duration like 30s or 24h (…)").
 */
export const duration = (min: number, max: number, example = '30s or 24h') =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    try {
      const ms = parseDuration(v);
      if (ms < min || ms > max)
        throw new RangeError(`between ${formatDuration(min)} and ${formatDuration(max)}`);
      return ms;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `a duration like ${example} (${(err as Error).message})` });
      return z.NEVER;
    }
  });
