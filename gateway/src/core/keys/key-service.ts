import {
  type RewrapResult,
  rewrap,
  type UnwrapInput,
  type UnwrapResult,
  unwrap,
  type WrapInput,
  type WrapResult,
  wrap,
} from './key-crypto.js';
import type { KeyDeps } from './key-deps.js';
import {
  type CreateKeyInput,
  createKey,
  destroyKey,
  getKey,
  listKeys,
  rotateKey,
  setKeyEnabled,
} from './key-lifecycle.js';
import {
  type KeyListQuery,
  listKeyPage,
  listVersionPage,
  type Page,
  type VersionListQuery,
} from './key-listing.js';
import type { KeyRecord, KeyVersionRecord } from './key-store.js';
import { setVersionEnabled } from './key-version-state.js';

/** Every key use case bound to its ports: what the HTTP routes and the CLI call. */
export interface KeyService {
  create(input: CreateKeyInput): Promise<KeyRecord>;
  list(instance: string): Promise<readonly KeyRecord[]>;
  get(instance: string, id: string): Promise<KeyRecord>;
  /** A page of the instance's keys (the API's list; `list` is the CLI's live keys). */
  listPage(instance: string, query: KeyListQuery): Promise<Page<KeyRecord>>;
  /** A page of a key's versions, newest first. */
  versions(
    instance: string,
    id: string,
    query: VersionListQuery,
  ): Promise<{ readonly key: KeyRecord; readonly page: Page<KeyVersionRecord> }>;
  rotate(instance: string, id: string): Promise<KeyRecord>;
  disable(instance: string, id: string): Promise<KeyRecord>;
  enable(instance: string, id: string): Promise<KeyRecord>;
  destroy(instance: string, id: string): Promise<KeyRecord>;
  /** Refuses unwraps of blobs under an older version (KEY_VERSION_CURRENT_ERR for the current one). */
  disableVersion(instance: string, id: string, versionId: string): Promise<KeyRecord>;
  enableVersion(instance: string, id: string, versionId: string): Promise<KeyRecord>;
  wrap(input: WrapInput): Promise<WrapResult>;
  unwrap(input: UnwrapInput): Promise<UnwrapResult>;
  rewrap(input: UnwrapInput): Promise<RewrapResult>;
}

/** Binds the use cases to `deps`. */
export function createKeyService(deps: KeyDeps): KeyService {
  return {
    create: (input) => createKey(deps, input),
    list: (instance) => listKeys(deps, instance),
    get: (instance, id) => getKey(deps, instance, id),
    listPage: (instance, query) => listKeyPage(deps, instance, query),
    versions: (instance, id, query) => listVersionPage(deps, instance, id, query),
    rotate: (instance, id) => rotateKey(deps, instance, id),
    disable: (instance, id) => setKeyEnabled(deps, instance, id, false),
    enable: (instance, id) => setKeyEnabled(deps, instance, id, true),
    destroy: (instance, id) => destroyKey(deps, instance, id),
    disableVersion: (instance, id, v) => setVersionEnabled(deps, instance, id, v, false),
    enableVersion: (instance, id, v) => setVersionEnabled(deps, instance, id, v, true),
    wrap: (input) => wrap(deps, input),
    unwrap: (input) => unwrap(deps, input),
    rewrap: (input) => rewrap(deps, input),
  };
}
