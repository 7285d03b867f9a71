import { readFile } from 'node:fs/promises';
import type { Logger } from '@keygate/shared/log';
import { z } from 'zod';
import type {
  FleetStore,
  KeyUse,
  NodeRecord,
  RotationRecord,
  UsageCount,
  UsageQuery,
} from '../../core/fleet/fleet.js';
import { USAGE_OPS } from '../../core/fleet/fleet.js';
import { replaceFileDurably } from '../durable-file.js';
import { type FleetSnapshot, type MemoryFleetOptions, MemoryFleetStore } from './memory-fleet-store.js';

const text = z.string().min(1).max(1024);
const snapshotSchema = z.object({
  version: z.literal(1),
  nodes: z.array(
    z.object({
      cluster: text,
      node: text,
      instance: text,
      crk: text,
      shimVersion: text,
      kmsKeyId: text.optional(),
      keyVersion: text.optional(),
      apis: z.array(text),
      cacheSize: z.number().int().min(0),
      health: text,
      lastSeen: z.iso.datetime(),
      replica: text,
    }),
  ),
  usage: z.array(
    z.object({
      cluster: text,
      instance: text,
      crk: text,
      version: text,
      op: z.enum(USAGE_OPS),
      minute: z.iso.datetime(),
      count: z.number().int().min(0),
    }),
  ),
  rotations: z.array(
    z.object({
      instance: text,
      crk: text,
      fromVersion: text,
      toVersion: text,
      startedAt: z.iso.datetime(),
      startedBy: text,
    }),
  ),
});

export interface FleetFileOptions extends MemoryFleetOptions {
  readonly logger: Logger;
  /** Read only (the `fleet` CLI beside a running gateway): never writes the file. */
  readonly readOnly?: boolean;
}

/**
 * The fleet of a single gateway with the JSON file store: a MemoryFleetStore, loaded from
 * `fleet.json` (beside the key store file) at start and written back atomically (mode 0600) on
 * flush when something changed, and at close. A missing file is an empty fleet; an unreadable
 * one is logged and replaced at the next flush (fleet data is an operator's view, never needed to
 * serve a key operation). Rotations another process wrote to the file meanwhile are merged in at
 * each write; nodes and counts are this process's.
 */
export class FleetFileStore implements FleetStore {
  readonly #path: string;
  readonly #memory: MemoryFleetStore;
  readonly #logger: Logger;
  readonly #readOnly: boolean;
  #dirty = false;
  #closed = false;
  #writing: Promise<void> = Promise.resolve();

  private constructor(path: string, memory: MemoryFleetStore, options: FleetFileOptions) {
    this.#path = path;
    this.#memory = memory;
    this.#logger = options.logger;
    this.#readOnly = options.readOnly ?? false;
  }

  /** Loads `path` (when it exists) into a new store. */
  static async open(path: string, options: FleetFileOptions): Promise<FleetFileStore> {
    const memory = new MemoryFleetStore(options);
    let raw: string | undefined;
    try {
      raw = await readFile(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        options.logger.warn({ file: path, err: String(err) }, 'fleet file unreadable: starting empty');
      }
    }
    if (raw !== undefined) {
      const parsed = parseSnapshot(raw);
      if (parsed === undefined) {
        options.logger.warn({ file: path }, 'fleet file is not a fleet snapshot: starting empty');
      } else {
        memory.restore(parsed);
      }
    }
    return new FleetFileStore(path, memory, options);
  }

  noteNode(record: NodeRecord): void {
    if (this.#closed) return;
    this.#memory.noteNode(record);
    this.#dirty = true;
  }

  noteUse(use: KeyUse): void {
    if (this.#closed) return;
    this.#memory.noteUse(use);
    this.#dirty = true;
  }

  nodes(): Promise<readonly NodeRecord[]> {
    return this.#memory.nodes();
  }

  usage(query: UsageQuery): Promise<readonly UsageCount[]> {
    return this.#memory.usage(query);
  }

  async startRotation(record: RotationRecord): Promise<void> {
    await this.#memory.startRotation(record);
    this.#dirty = true;
    await this.flush();
  }

  rotations(instance: string, crk: string): Promise<readonly RotationRecord[]> {
    return this.#memory.rotations(instance, crk);
  }

  async forgetCluster(cluster: string): Promise<void> {
    await this.#memory.forgetCluster(cluster);
    this.#dirty = true;
    await this.flush();
  }

  /** Writes the file when something changed since the last write (one write at a time). */
  flush(): Promise<void> {
    const next = this.#writing.then(() => this.#write());
    this.#writing = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.flush();
    this.#closed = true;
  }

  async #write(): Promise<void> {
    if (!this.#dirty || this.#readOnly) return;
    this.#dirty = false;
    // A rotation another process (the CLI's `keys rotate`) recorded in the file since it was
    // read is kept: rotations are merged from the file before it is replaced.
    const onDisk = await readFile(this.#path, 'utf8').then(parseSnapshot, () => undefined);
    if (onDisk !== undefined) this.#memory.restore({ nodes: [], usage: [], rotations: onDisk.rotations });
    const snap = this.#memory.snapshot();
    try {
      await replaceFileDurably(this.#path, `${JSON.stringify({ version: 1, ...snap })}\n`, 0o600);
    } catch (err) {
      this.#dirty = true;
      throw err;
    }
  }
}

/** The snapshot in a fleet.json text, or undefined when it is not one. */
export function parseSnapshot(raw: string): FleetSnapshot | undefined {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return undefined;
  }
  const r = snapshotSchema.safeParse(json);
  return r.success ? r.data : undefined;
}
