import { readFile, stat } from 'node:fs/promises';
import { KeygateError } from '@keygate/shared/errors';
import {
  assertNameFree,
  type KeyLookup,
  type KeyRecord,
  type KeyStore,
  type KeyVersionRecord,
} from '../../core/keys/key-store.js';
import { replaceFileDurably } from '../durable-file.js';
import { withFileLock } from './file-lock.js';

interface StoreFile {
  readonly format: 1;
  readonly generation: number;
  readonly keys: readonly KeyRecord[];
  /**
   * Encryptions reserved per key version (versionSlot). In the file each count is the version
   * object's `encryptionsReserved` (where writers that predate it keep it: they copy version
   * objects whole); in memory it is kept apart so that the records get() returns stay as stored.
   */
  readonly reserved: ReadonlyMap<string, number>;
}

interface Snapshot {
  readonly ino: number;
  readonly mtimeMs: number;
  readonly size: number;
  readonly data: StoreFile;
}

const EMPTY: StoreFile = { format: 1, generation: 0, keys: [], reserved: new Map() };

export interface JsonFileKeyStoreOptions {
  /** Re-check the file at most this often on hits (misses always check). */
  readonly refreshMs?: number;
  readonly lockTimeoutMs?: number;
  /**
   * open() writes an empty store when the file does not exist. Otherwise, and always after open,
   * a missing file is STORE_UNAVAILABLE: a replaced or unmounted volume must not read as "no keys".
   */
  readonly createIfMissing?: boolean;
}

/** While the store is unusable, status() re-reads it at most this often (readiness follows a fix). */
const RECHECK_MS = 1000;

/**
 * The embedded key metadata store: one JSON file, safe for several gateway processes on one host.
 * Writes hold an exclusive lock file and replace the file atomically (temp file, fsync, rename,
 * fsync of the folder). Reads use a cached copy that is re-read when the file's inode, mtime or
 * size changed, checked on every miss and at most every `refreshMs` otherwise. A missing (unless
 * `createIfMissing`), empty, truncated or unparsable file is STORE_UNAVAILABLE and shows in
 * status() until a read succeeds again.
 */
export class JsonFileKeyStore implements KeyStore {
  #snap: Snapshot | undefined;
  #checkedAt = 0;
  #lastError: string | undefined;
  #recheck: Promise<unknown> | undefined;

  constructor(
    readonly file: string,
    private readonly options: JsonFileKeyStoreOptions = {},
  ) {}

  async create(record: KeyRecord): Promise<void> {
    await this.mutate((keys) => {
      assertNameFree(keys, record);
      return [...keys, record];
    });
  }

  async get(instance: string, id: string, lookup: KeyLookup = {}): Promise<KeyRecord | undefined> {
    const find = (d: StoreFile) => d.keys.find((k) => k.instance === instance && k.id === id);
    const hit = find(await this.read(lookup.fresh === true));
    if (hit !== undefined || lookup.fresh === true) return hit;
    return find(await this.read(true));
  }

  async list(instance: string): Promise<readonly KeyRecord[]> {
    return (await this.read(true)).keys.filter((k) => k.instance === instance);
  }

  async update(instance: string, id: string, change: (current: KeyRecord) => KeyRecord): Promise<KeyRecord> {
    let out: KeyRecord | undefined;
    await this.mutate((keys) => {
      const i = keys.findIndex((k) => k.instance === instance && k.id === id);
      const cur = keys[i];
      if (cur === undefined) throw new KeygateError('KEY_NOT_FOUND_ERR', { detail: { instance, keyId: id } });
      out = change(cur);
      return keys.map((k, j) => (j === i ? (out as KeyRecord) : k));
    });
    if (out === undefined) throw new KeygateError('KEY_NOT_FOUND_ERR', { detail: { instance, keyId: id } });
    return out;
  }

  async reserveEncryptions(
    instance: string,
    keyId: string,
    versionId: string,
    count: number,
  ): Promise<number> {
    if (!Number.isSafeInteger(count) || count < 0) throw new RangeError('count: an integer >= 0');
    let total = 0;
    const find = (d: StoreFile) => {
      const key = d.keys.find((k) => k.instance === instance && k.id === keyId);
      if (key === undefined || !key.versions.some((v) => v.id === versionId)) {
        throw new KeygateError('KEY_NOT_FOUND_ERR', { detail: { instance, keyId } });
      }
      return d.reserved.get(versionSlot(instance, keyId, versionId)) ?? 0;
    };
    if (count === 0) return find(await this.read(true));
    await this.mutateFile((cur) => {
      total = find(cur) + count;
      const reserved = new Map(cur.reserved);
      reserved.set(versionSlot(instance, keyId, versionId), total);
      return { ...cur, reserved };
    });
    return total;
  }

  /** Reads the file once (creating an empty store when told to), so status() is true from the start. */
  async open(): Promise<void> {
    try {
      if (this.options.createIfMissing === true) await this.createIfAbsent();
      await this.read(true);
    } catch {
      // status() now says why; requests answer STORE_UNAVAILABLE until the file is fixed.
    }
  }

  status(): { ready: boolean; reasons: readonly string[] } {
    if (this.#lastError === undefined) return { ready: true, reasons: [] };
    // Readiness probes call this: look again now and then, so a fixed file shows without a request.
    if (this.#recheck === undefined && Date.now() - this.#checkedAt >= RECHECK_MS) {
      this.#recheck = this.read(true)
        .catch(() => undefined)
        .finally(() => {
          this.#recheck = undefined;
        });
    }
    return { ready: false, reasons: [this.#lastError] };
  }

  async close(): Promise<void> {}

  private async mutate(change: (keys: readonly KeyRecord[]) => KeyRecord[]): Promise<void> {
    await this.mutateFile((cur) => ({ ...cur, keys: change(cur.keys) }));
  }

  private async mutateFile(change: (cur: StoreFile) => StoreFile): Promise<void> {
    await withFileLock(
      `${this.file}.lock`,
      async () => {
        const cur = await this.read(true);
        const next: StoreFile = { ...change(cur), format: 1, generation: cur.generation + 1 };
        await this.write(next);
        this.#snap = undefined;
        await this.read(true);
      },
      { timeoutMs: this.options.lockTimeoutMs },
    );
  }

  private async read(force: boolean): Promise<StoreFile> {
    const now = Date.now();
    if (!force && this.#snap && now - this.#checkedAt < (this.options.refreshMs ?? 1000))
      return this.#snap.data;
    this.#checkedAt = now;
    try {
      const st = await stat(this.file);
      if (
        !this.#snap ||
        this.#snap.ino !== st.ino ||
        this.#snap.mtimeMs !== st.mtimeMs ||
        this.#snap.size !== st.size
      ) {
        const data = parse(await readFile(this.file, 'utf8'));
        this.#snap = { ino: st.ino, mtimeMs: st.mtimeMs, size: st.size, data };
      }
      this.#lastError = undefined;
      return this.#snap.data;
    } catch (err) {
      this.#snap = undefined;
      this.#lastError = problemText(this.file, err);
      throw new KeygateError('STORE_UNAVAILABLE', { cause: err, detail: { file: this.file } });
    }
  }

  /** Writes an empty store unless the file exists (under the lock: another gateway may be first). */
  private async createIfAbsent(): Promise<void> {
    await withFileLock(
      `${this.file}.lock`,
      async () => {
        const exists = await stat(this.file).then(
          () => true,
          (err: NodeJS.ErrnoException) => {
            if (err.code === 'ENOENT') return false;
            throw err;
          },
        );
        if (!exists) await this.write(EMPTY);
      },
      { timeoutMs: this.options.lockTimeoutMs },
    );
  }

  private async write(data: StoreFile): Promise<void> {
    try {
      await replaceFileDurably(this.file, `${JSON.stringify(toFile(data), null, 1)}\n`);
    } catch (err) {
      throw new KeygateError('STORE_UNAVAILABLE', { cause: err, detail: { file: this.file } });
    }
  }
}

/** What /readyz says about an unusable store file, in operator words. */
function problemText(file: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') {
    return `key store ${file} does not exist (create the first key with \`keygate-gateway keys create\`, or set store.createIfMissing on a first start)`;
  }
  if (code !== undefined) return `key store ${file} unreadable (${code})`;
  return `key store ${file} is not a valid key store (empty, truncated or not keygate's JSON): restore it from a backup`;
}

function versionSlot(instance: string, keyId: string, versionId: string): string {
  return `${instance}\u0000${keyId}\u0000${versionId}`;
}

interface FileVersion extends KeyVersionRecord {
  readonly encryptionsReserved?: number;
}

function parse(text: string): StoreFile {
  const data = JSON.parse(text) as Partial<Omit<StoreFile, 'reserved'>>;
  if (data.format !== 1 || typeof data.generation !== 'number' || !Array.isArray(data.keys)) {
    throw new Error('not a keygate key store file');
  }
  const reserved = new Map<string, number>();
  const keys = data.keys.map((k) => {
    if (!k.versions.some((v: FileVersion) => v.encryptionsReserved !== undefined)) return k;
    const versions = k.versions.map((v: FileVersion) => {
      const { encryptionsReserved, ...plain } = v;
      if (typeof encryptionsReserved === 'number') {
        reserved.set(versionSlot(k.instance, k.id, v.id), encryptionsReserved);
      }
      return plain;
    });
    return { ...k, versions };
  });
  return { format: 1, generation: data.generation, keys, reserved };
}

/** The file's JSON: the reserved counts go back into their version objects. */
function toFile(data: StoreFile): object {
  const keys = data.keys.map((k) => {
    if (!k.versions.some((v) => data.reserved.has(versionSlot(k.instance, k.id, v.id)))) return k;
    const versions = k.versions.map((v) => {
      const n = data.reserved.get(versionSlot(k.instance, k.id, v.id));
      return n === undefined ? v : { ...v, encryptionsReserved: n };
    });
    return { ...k, versions };
  });
  return { format: data.format, generation: data.generation, keys };
}
