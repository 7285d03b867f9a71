import { parseDuration } from '@keygate/shared/config';
import { z } from 'zod';

const duration = (max: number) =>
  z.union([z.string(), z.number()]).transform((v, ctx) => {
    try {
      const ms = parseDuration(v);
      if (ms > max) throw new RangeError(`at most ${max / 1000}s`);
      return ms;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `a duration like 30s or 10m (${(err as Error).message})` });
      return z.NEVER;
    }
  });

/**
 * The `tokens:` section the gateway config embeds: issuer, audience, lifetime (default 10m, at
 * most 1h), expiry leeway (default 5s, at most 30s) and the signing key files (first signs).
 * Durations come out in milliseconds.
 */
export const tokensSchema = z.strictObject({
  issuer: z.string().min(1).default('keygate'),
  audience: z.string().min(1).default('keygate-gateway'),
  lifetime: duration(3_600_000)
    .default(600_000)
    .refine((ms) => ms >= 60_000, 'a lifetime of at least 1m'),
  leeway: duration(30_000).default(5_000),
  signingKeyFiles: z.array(z.string().min(1)).min(1),
});
export type TokensConfig = z.infer<typeof tokensSchema>;
