import { KeygateError } from '@keygate/shared/errors';
import { assertNameFree, type KeyRecord, type KeyStore } from '../core/keys/key-store.js';

/** The key store as a Map: for unit tests. Not shared between processes. */
export class MemoryKeyStore implements KeyStore {
  readonly #keys = new Map<string, KeyRecord>();

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

  async open(): Promise<void> {}
  status(): { ready: boolean; reasons: readonly string[] } {
    return { ready: true, reasons: [] };
  }

  async close(): Promise<void> {}
}

function slot(instance: string, id: string): string {
  return `${instance}\u0000${id}`;
}
