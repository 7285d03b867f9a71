import { resolve, sep } from 'node:path';
import { z } from 'zod';
import { duration } from './config-duration.js';

/** The durable, hash-chained audit log in files (docs/audit.md). */
const fileAuditSchema = z
  .strictObject({
    /** `file` (the default when absent): the log in `dir`; `postgres`: the chain in the database. */
    target: z.literal('file'),
    dir: z.string().min(1),
    signingKeyFile: z.string().min(1),
    /** The audit anchor (docs/audit.md "The anchor"); outside `dir`. Default `<dir>.anchor.json`. */
    anchorFile: z.string().min(1).optional(),
    /** The anchor is rewritten in the background at most this often (and after every checkpoint). */
    anchorInterval: duration(100, 60_000).default(1000),
    /** Also copy every record line to stdout, for log shippers. */
    stdout: z.boolean().default(false),
    checkpointEvery: z.number().int().min(1).max(1_000_000).default(1000),
    checkpointInterval: duration(1000, 3_600_000).default(60_000),
    maxFileBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(16 * 1024 ** 3)
      .default(64 * 1024 * 1024),
    maxFileAge: duration(60_000, 30 * 86_400_000).default(86_400_000),
  })
  .superRefine((a, ctx) => {
    const dir = resolve(a.dir);
    if (a.anchorFile !== undefined && (resolve(a.anchorFile) + sep).startsWith(dir + sep)) {
      ctx.addIssue({
        code: 'custom',
        path: ['anchorFile'],
        message: `a file outside audit.dir (${a.dir}): the anchor must survive the folder being erased`,
      });
    }
  })
  .transform((a) => ({ ...a, anchorFile: a.anchorFile ?? defaultAnchorFile(a.dir) }));

/**
 * The audit chain in PostgreSQL (docs/audit.md "PostgreSQL"): one chain for every replica, in the
 * database of `store.postgres` (required).
 */
const postgresAuditSchema = z.strictObject({
  target: z.literal('postgres'),
  signingKeyFile: z.string().min(1),
  checkpointEvery: z.number().int().min(1).max(1_000_000).default(1000),
  checkpointInterval: duration(1000, 3_600_000).default(60_000),
  /** Named in this replica's start records; default the host name (in Kubernetes, the pod name). */
  replica: z.string().min(1).max(253).optional(),
});

/** `audit:` — `target: file` (the default) or `target: postgres`. */
export const auditSchema = z.preprocess(
  (v) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) && !('target' in v)
      ? { ...v, target: 'file' }
      : v,
  z.discriminatedUnion('target', [fileAuditSchema, postgresAuditSchema]),
);

/** `<dir>.anchor.json`: beside the audit folder, not in it. */
function defaultAnchorFile(dir: string): string {
  return `${dir.replace(/\/+$/, '')}.anchor.json`;
}
