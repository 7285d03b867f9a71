import { readFile, stat } from 'node:fs/promises';
import { KeygateError } from '@keygate/shared/errors';
import type { KeyLookup, KeyRecord, KeyStore } from '../../core/keys/key-store.js';
import { assertNameFree } from '../../core/keys/memory-key-store.js';
import { replaceFileDurably } from '../durable-file.js';
import { withFileLock } from './file-lock.js';

interface StoreFile {
  readonly format: 1;
  readonly generation: number;
  readonly keys: readonly KeyRecord[];
}

interface Snapshot {
  readonly ino: number;
  readonly mtimeMs: number;
  readonly size: number;
  readonly data: StoreFile;
}

const EMPTY: StoreFile = { format: 1, generation: 0, keys: [] };

export interface JsonFileKeyStoreOptions {
  /** Re-check the file at most this often on hits (misses always check). */
  readonly refreshMs?: number;
  readonly lockTimeoutMs?: number;
}

/**
 * The embedded key metadata store: one JSON file, safe for several gateway processes on one host.
 * Writes hold an exclusive lock file and replace the file atomically (temp file, fsync, rename,
 * fsync of the folder). Reads use a cached copy that is re-read when the file's inode, mtime or
 * size changed, checked on every miss and at most every `refreshMs` otherwise.
 */
export class JsonFileKeyStore implements KeyStore {
  #snap: Snapshot | undefined;
  #checkedAt = 0;
  #lastError: string | undefined;

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

  status(): { ready: boolean; reasons: readonly string[] } {
    return this.#lastError ? { ready: false, reasons: [this.#lastError] } : { ready: true, reasons: [] };
  }

  async close(): Promise<void> {}

  private async mutate(change: (keys: readonly KeyRecord[]) => KeyRecord[]): Promise<void> {
    await withFileLock(
      `${this.file}.lock`,
      async () => {
        const cur = await this.read(true);
        const next: StoreFile = { format: 1, generation: cur.generation + 1, keys: change(cur.keys) };
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
      const st = await stat(this.file).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (st === undefined) {
        this.#snap = { ino: 0, mtimeMs: 0, size: 0, data: EMPTY };
      } else if (
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
      this.#lastError = `key store ${this.file} unreadable (${(err as NodeJS.ErrnoException).code ?? 'invalid content'})`;
      throw new KeygateError('STORE_UNAVAILABLE', { cause: err, detail: { file: this.file } });
    }
  }

  private async write(data: StoreFile): Promise<void> {
    try {
      await replaceFileDurably(this.file, `${JSON.stringify(data, null, 1)}\n`);
    } catch (err) {
      throw new KeygateError('STORE_UNAVAILABLE', { cause: err, detail: { file: this.file } });
    }
  }
}

function parse(text: string): StoreFile {
  const data = JSON.parse(text) as Partial<StoreFile>;
  if (data.format !== 1 || typeof data.generation !== 'number' || !Array.isArray(data.keys)) {
    throw new Error('not a keygate key store file');
  }
  return data as StoreFile;
}
