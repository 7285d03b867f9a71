import { type FSWatcher, watch } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { asKeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import { IdentityDirectory, type IdentityInput } from '../../core/auth/identity-directory.js';
import type { ApiKeyMatch, IdentitySource, ServiceIdentity } from '../../core/auth/identity-source.js';
import {
  type ClusterEntry,
  clusterIdentity,
  EMPTY_CLUSTERS_FILE,
  parseClustersFile,
  readClustersFileSync,
} from './clusters-file.js';

/** What changed in clusters.json between two reads (the gateway audits it). */
export interface ClusterFileChange {
  readonly added: readonly ClusterEntry[];
  readonly removed: readonly ClusterEntry[];
  /** The file's `changedBy`: who ran the command. */
  readonly changedBy?: string | undefined;
}

export interface FileClusterIdentitiesOptions {
  /** The config file's `identities:` (read-only; they win over a cluster of the same name). */
  readonly configured: readonly IdentityInput[];
  /** clusters.json (clustersFilePath of the key store file). */
  readonly file: string;
  readonly logger: Logger;
  /** How often the file is stat'ed in case a watch event was missed (default 1000 ms). */
  readonly pollMs?: number;
}

/**
 * Token-mode identities on the file store: the config's `identities:` plus the clusters of
 * clusters.json, which `keygate-gateway clusters add|remove` change while the gateway runs. The file
 * is followed with fs.watch on its folder (it is replaced by rename) and a periodic stat; each
 * change rebuilds the directory in one step, so a removed cluster's next request is refused
 * (AUTH_TOKEN_REVOKED: liveIdentity answers from the new directory) and its verified tokens are
 * dropped from the cache. A file that cannot be read or parsed keeps the last good state (logged).
 */
export class FileClusterIdentities implements IdentitySource {
  readonly #opts: FileClusterIdentitiesOptions;
  readonly #configuredNames: ReadonlySet<string>;
  readonly #invalidate = new Set<(subject: string | undefined) => void>();
  readonly #changes = new Set<(change: ClusterFileChange) => void>();
  #directory: IdentityDirectory;
  #clusters = new Map<string, ClusterEntry>();
  #stamp = '';
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #reloading: Promise<void> | undefined;
  #again = false;

  /** Reads the file now: a bad file at start is CONFIG_INVALID (the gateway does not start). */
  constructor(opts: FileClusterIdentitiesOptions) {
    this.#opts = opts;
    this.#configuredNames = new Set(opts.configured.map((c) => c.name));
    this.#directory = new IdentityDirectory(opts.configured);
    this.#apply(readClustersFileSync(opts.file).clusters);
  }

  /** Starts following the file. */
  start(): void {
    if (this.#timer !== undefined) return;
    try {
      const name = basename(this.#opts.file);
      this.#watcher = watch(dirname(this.#opts.file), { persistent: false }, (_event, file) => {
        if (file === null || file === name) this.reload();
      });
      this.#watcher.on('error', () => undefined);
    } catch (err) {
      this.#opts.logger.warn(
        { err: asKeygateError(err).toLog() },
        'clusters.json: no fs.watch; polling only',
      );
    }
    this.#timer = setInterval(() => this.#poll(), this.#opts.pollMs ?? 1000);
    this.#timer.unref();
    void this.#poll();
  }

  /** Re-reads the file (serialised; a request during a reload runs once more after it). */
  reload(): Promise<void> {
    if (this.#reloading !== undefined) {
      this.#again = true;
      return this.#reloading;
    }
    this.#reloading = (async () => {
      do {
        this.#again = false;
        await this.#readOnce();
      } while (this.#again);
    })().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  /** The onboarded clusters as now applied. */
  clusters(): readonly ClusterEntry[] {
    return [...this.#clusters.values()];
  }

  /** Calls `fn` after each applied change (clusters added or removed). */
  onChange(fn: (change: ClusterFileChange) => void): () => void {
    this.#changes.add(fn);
    return () => this.#changes.delete(fn);
  }

  findByApiKey(apiKey: string): Promise<ApiKeyMatch | undefined> {
    return this.#directory.findByApiKey(apiKey);
  }

  liveIdentity(subject: string, apiKeyId: string | undefined): ServiceIdentity | undefined {
    // A cluster's token always names its key: one without (an older gateway's) is not a cluster's.
    if (apiKeyId === undefined && this.#clusters.has(subject)) return undefined;
    return this.#directory.liveIdentity(subject, apiKeyId);
  }

  onInvalidate(fn: (subject: string | undefined) => void): () => void {
    this.#invalidate.add(fn);
    return () => this.#invalidate.delete(fn);
  }

  close(): void {
    this.#watcher?.close();
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #poll(): Promise<void> {
    let stamp: string;
    try {
      const s = await stat(this.#opts.file);
      stamp = `${s.ino}:${s.mtimeMs}:${s.size}`;
    } catch {
      stamp = 'absent';
    }
    if (stamp !== this.#stamp) await this.reload();
  }

  async #readOnce(): Promise<void> {
    const file = this.#opts.file;
    let text: string | undefined;
    let stamp = 'absent';
    try {
      const s = await stat(file);
      stamp = `${s.ino}:${s.mtimeMs}:${s.size}`;
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.#opts.logger.error({ err: asKeygateError(err).toLog(), file }, 'clusters.json unreadable');
        return;
      }
    }
    let parsed = EMPTY_CLUSTERS_FILE;
    try {
      if (text !== undefined) parsed = parseClustersFile(text, file);
    } catch (err) {
      this.#opts.logger.error(
        { err: asKeygateError(err).toLog(), file },
        'clusters.json is invalid: the clusters last read stay in force',
      );
      this.#stamp = stamp;
      return;
    }
    this.#stamp = stamp;
    const before = this.#clusters;
    this.#apply(parsed.clusters);
    const added = [...this.#clusters.values()].filter((c) => !same(before.get(c.name), c));
    const removed = [...before.values()].filter((c) => !same(this.#clusters.get(c.name), c));
    if (added.length === 0 && removed.length === 0) return;
    for (const c of new Set([...added, ...removed].map((x) => x.name)))
      for (const fn of this.#invalidate) fn(c);
    this.#opts.logger.info(
      { added: added.map((c) => c.name), removed: removed.map((c) => c.name), clusters: this.#clusters.size },
      'clusters.json changed: identities reloaded',
    );
    const change = { added, removed, changedBy: parsed.changedBy };
    for (const fn of this.#changes) fn(change);
  }

  /** Builds the directory from the configured identities plus `entries` (clashing names skipped). */
  #apply(entries: readonly ClusterEntry[]): void {
    const next = new Map<string, ClusterEntry>();
    for (const c of entries) {
      if (this.#configuredNames.has(c.name)) {
        this.#opts.logger.error(
          { cluster: c.name, file: this.#opts.file },
          'clusters.json: a cluster has the name of a configured identity; the configured identity wins',
        );
        continue;
      }
      next.set(c.name, c);
    }
    this.#directory = new IdentityDirectory([
      ...this.#opts.configured,
      ...[...next.values()].map(clusterIdentity),
    ]);
    this.#clusters = next;
  }
}

function same(a: ClusterEntry | undefined, b: ClusterEntry): boolean {
  return a !== undefined && JSON.stringify(a) === JSON.stringify(b);
}
