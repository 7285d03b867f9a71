import { readFileSync } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { INSTANCE_ID_PATTERN, KEY_ID_PATTERN } from '@keygate/shared/api';
import { KeygateError } from '@keygate/shared/errors';
import { z } from 'zod';
import { API_KEY_HASH_PATTERN } from '../../core/auth/api-key.js';
import type { IdentityInput } from '../../core/auth/identity-directory.js';
import { GLOBAL_ROLES, ROLES } from '../../core/auth/principal.js';
import { CLUSTER_NAME, type ClusterRecord, clusterCertIdentity } from '../../core/clusters/cluster.js';
import { replaceFileDurably } from '../durable-file.js';
import { createLockFile, pidAlive, readLockHolder, removeStaleLock } from '../pid-lock-file.js';

/**
 * clusters.json: the clusters onboarded with `keygate-gateway clusters add` on the file store,
 * beside the key store file (mode 0600, replaced atomically). The gateway merges it with the
 * config's `identities:` and follows its changes (file-cluster-identities.ts). Only API key
 * hashes are stored, never a key.
 */

const clusterEntry = z.strictObject({
  name: z.string().regex(CLUSTER_NAME),
  instance: z.string().regex(INSTANCE_ID_PATTERN),
  crk: z.string().regex(KEY_ID_PATTERN),
  roles: z
    .array(z.enum(ROLES))
    .min(1)
    .refine((r) => !r.some((role) => GLOBAL_ROLES.includes(role)), 'instance roles only'),
  createdAt: z.string(),
  gatewayUrls: z.array(z.string()),
  cert: z.strictObject({ serial: z.string(), fingerprint256: z.string(), notAfter: z.string() }),
  apiKeyHashes: z.array(z.string().regex(API_KEY_HASH_PATTERN)).min(1),
  /** Who ran `clusters add` (`cli:<os user>`), for the gateway's audit record. */
  addedBy: z.string().optional(),
});
export type ClusterEntry = z.infer<typeof clusterEntry>;

const fileSchema = z.strictObject({
  version: z.literal(1),
  /** Who made the last change (`cli:<os user>`), for the gateway's audit record of a removal. */
  changedBy: z.string().optional(),
  clusters: z.array(clusterEntry),
});
export type ClustersFile = z.infer<typeof fileSchema>;

export const EMPTY_CLUSTERS_FILE: ClustersFile = { version: 1, clusters: [] };

/** `clusters.json` in the key store file's folder. */
export function clustersFilePath(storeFile: string): string {
  return join(dirname(storeFile), 'clusters.json');
}

/** Parses the file's text; a bad file is CONFIG_INVALID naming it (never a partial list). */
export function parseClustersFile(text: string, file: string): ClustersFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new KeygateError('CONFIG_INVALID', { detail: { file, reason: 'not JSON' } });
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new KeygateError('CONFIG_INVALID', {
      detail: { file, path: issue?.path.join('.') ?? '', reason: issue?.message ?? 'invalid' },
    });
  }
  const names = new Set<string>();
  for (const c of parsed.data.clusters) {
    if (names.has(c.name))
      throw new KeygateError('CONFIG_INVALID', {
        detail: { file, reason: `cluster ${c.name} listed twice` },
      });
    names.add(c.name);
  }
  return parsed.data;
}

/** Reads the file now (a missing file is no clusters). */
export function readClustersFileSync(file: string): ClustersFile {
  try {
    return parseClustersFile(readFileSync(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_CLUSTERS_FILE;
    throw err;
  }
}

export async function readClustersFile(file: string): Promise<ClustersFile> {
  try {
    return parseClustersFile(await readFile(file, 'utf8'), file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return EMPTY_CLUSTERS_FILE;
    throw err;
  }
}

/**
 * Changes the file under its lock (`clusters.json.lock`, O_EXCL, naming the holder's pid): reads it,
 * applies `change`, writes it back atomically and durably (0600). Two CLIs never lose each
 * other's change; a lock left by a dead process is taken over.
 */
export async function changeClustersFile(
  file: string,
  change: (current: ClustersFile) => ClustersFile,
): Promise<ClustersFile> {
  const lock = `${file}.lock`;
  for (let attempt = 0; ; attempt++) {
    if (await createLockFile(lock, { at: new Date().toISOString() })) break;
    const holder = await readLockHolder(lock);
    if (typeof holder?.pid === 'number' && !pidAlive(holder.pid)) {
      await removeStaleLock(lock);
      continue;
    }
    if (attempt >= 50)
      throw new KeygateError('STORE_UNAVAILABLE', {
        detail: { reason: `${lock} is held by another process (pid ${String(holder?.pid)})` },
      });
    await new Promise((r) => setTimeout(r, 100));
  }
  try {
    const next = change(await readClustersFile(file));
    await replaceFileDurably(file, `${JSON.stringify(next, null, 2)}\n`, 0o600);
    return next;
  } finally {
    await unlink(lock).catch(() => undefined);
  }
}

/** The identity a cluster entry stands for (merged with the config's identities by the gateway). */
export function clusterIdentity(c: ClusterEntry): IdentityInput {
  return {
    name: c.name,
    apiKeyHashes: c.apiKeyHashes,
    certIdentities: [clusterCertIdentity(c.name)],
    roles: { [c.instance]: c.roles },
  };
}

/** The record without the hashes (what list/show print). */
export function toClusterRecord(c: ClusterEntry): ClusterRecord {
  const { apiKeyHashes: _hashes, addedBy: _by, ...record } = c;
  return record;
}
