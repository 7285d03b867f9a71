import { KeygateError } from '@keygate/shared/errors';
import type { KeyLookup, KeyRecord, KeyStore } from '../../core/keys/key-store.js';
import type { PgDatabase } from './pg-database.js';

/** PLACEHOLDER (issue 16 in progress): the PostgreSQL key store. Every call refuses. */
export class PostgresKeyStore implements KeyStore {
  constructor(readonly db: PgDatabase) {}
  async create(_record: KeyRecord): Promise<void> {
    throw new KeygateError('STORE_UNAVAILABLE');
  }
  async get(_i: string, _id: string, _l?: KeyLookup): Promise<KeyRecord | undefined> {
    throw new KeygateError('STORE_UNAVAILABLE');
  }
  async list(_i: string): Promise<readonly KeyRecord[]> {
    throw new KeygateError('STORE_UNAVAILABLE');
  }
  async update(_i: string, _id: string, _c: (k: KeyRecord) => KeyRecord): Promise<KeyRecord> {
    throw new KeygateError('STORE_UNAVAILABLE');
  }
  async open(): Promise<void> {
    await this.db.open();
  }
  status() {
    return this.db.status();
  }
  async close(): Promise<void> {}
}
