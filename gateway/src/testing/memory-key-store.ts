import { KeygateError } from '@keygate/shared/errors';
import { assertNameFree, type KeyRecord, type KeyStore } from '../core/keys/key-store.js';

/** The key store as a Map: for unit tests. Not shared between processes. */
export class MemoryKeyStore implements KeyStore {
  readonly #keys = new Map<string, KeyRecord>();
  readonly #reserved = new Map<string, number>();

  async create(record: KeyRecord): Promise<void> {
    assertNameFree([...this.#keys.values()], record);
    this.#keys.set(slot(record.instance, record.id), record);
  }

  async get(instance: string, id: string): Promise<KeyRecord | undefined> {
    return this.#keys.get(slot(instance, id));
  }

  async list(instance: string): Promise<readonly KeyRecord[]> {
    return [...this.#keys.values()].filter((k) => k.instance === instance);
  }

  async update(instance: string, id: string, change: (current: KeyRecord) => KeyRecord): Promise<KeyRecord> {
    const cur = this.#keys.get(slot(instance, id));
    if (cur === undefined) throw new KeygateError('KEY_NOT_FOUND_ERR', { detail: { instance, keyId: id } });
    const next = change(cur);
    this.#keys.set(slot(instance, id), next);
    return next;
  }

  async reserveEncryptions(
    instance: string,
    keyId: string,
    versionId: string,
    count: number,
  ): Promise<number> {
    const key = this.#keys.get(slot(instance, keyId));
    if (key === undefined || !key.versions.some((v) => v.id === versionId)) {
      throw new KeygateError('KEY_NOT_FOUND_ERR', { detail: { instance, keyId } });
    }
    const k = `${slot(instance, keyId)}\u0000${versionId}`;
    const total = (this.#reserved.get(k) ?? 0) + count;
    this.#reserved.set(k, total);
    return total;
  }

  async open(): Promise<void> {}
  status(): { ready: boolean; reasons: readonly string[] } {
    return { ready: true, reasons: [] };
  }

  async close(): Promise<void> {}
}

function slot(instance: string, id: string): string {
  return `${instance}\u0000${id}`;
}
