import { KeyState } from '@keygate/shared/api';
import { zeroize } from '@keygate/shared/crypto';
import { isKeygateError, KeygateError } from '@keygate/shared/errors';
import {
  decodeWrappedDek,
  encodeWrapHeader,
  encodeWrappedDek,
  WRAP_LIMITS,
  wrapAad,
} from '@keygate/shared/formats';
import type { KeyObjectRef } from './hsm.js';
import type { KeyDeps } from './key-deps.js';
import { assertUsable, loadKey } from './key-deps.js';
import { currentVersion, type KeyRecord } from './key-store.js';
import { isDisabled } from './key-version-state.js';

/** Length of a DEK the gateway generates when wrap is called without plaintext. */
export const GENERATED_DEK_BYTES = 32;

export interface WrapInput {
  readonly instance: string;
  readonly keyId: string;
  /** The DEK to wrap (the caller keeps ownership and zeroes it); absent: the gateway makes one. */
  readonly plaintext?: Buffer | undefined;
  readonly aad: readonly string[];
}

export interface WrapResult {
  readonly ciphertext: Buffer;
  readonly keyVersionId: string;
  /** The generated DEK when none was given; the caller must zero it after use. */
  readonly generated?: Buffer | undefined;
}

export interface UnwrapInput {
  readonly instance: string;
  readonly keyId: string;
  readonly ciphertext: Buffer;
  readonly aad: readonly string[];
}

export interface UnwrapResult {
  /** The DEK; the caller must zero it after use. */
  readonly plaintext: Buffer;
  /** The version the blob was made under. */
  readonly keyVersionId: string;
  /** When that is not the current version: the same DEK wrapped under the current one. */
  readonly rewrapped?: { readonly ciphertext: Buffer; readonly keyVersionId: string } | undefined;
}

export interface RewrapResult {
  readonly ciphertext: Buffer;
  /** The version the input blob was made under. */
  readonly keyVersionId: string;
  /** The (current) version the output is under. */
  readonly rewrappedKeyVersionId: string;
}

/** Wraps a given or generated DEK under the key's current version. */
export async function wrap(deps: KeyDeps, input: WrapInput): Promise<WrapResult> {
  checkAad(input.aad);
  const key = await loadKey(deps, input.instance, input.keyId);
  assertUsable(key);
  if (input.plaintext !== undefined) {
    if (input.plaintext.length === 0)
      throw new KeygateError('INVALID_FIELD_ERR', { detail: { field: 'plaintext' } });
    if (input.plaintext.length > WRAP_LIMITS.maxPlaintextBytes)
      throw new KeygateError('PLAINTEXT_TOO_LARGE_ERR');
    const sealed = await sealUnderCurrent(deps, key, input.plaintext, input.aad);
    return { ciphertext: sealed.ciphertext, keyVersionId: sealed.keyVersionId };
  }
  const dek = deps.random(GENERATED_DEK_BYTES);
  try {
    const sealed = await sealUnderCurrent(deps, key, dek, input.aad);
    return { ciphertext: sealed.ciphertext, keyVersionId: sealed.keyVersionId, generated: dek };
  } catch (err) {
    zeroize(dek);
    throw err;
  }
}

/**
 * Unwraps a blob made under any live version; with `rewrapOnUnwrap`, also re-wraps it under the
 * current one when older.
 */
export async function unwrap(deps: KeyDeps, input: UnwrapInput): Promise<UnwrapResult> {
  const { key, plaintext, keyVersionId } = await open(deps, input);
  const current = currentVersion(key);
  if (current.id === keyVersionId || deps.rewrapOnUnwrap !== true) return { plaintext, keyVersionId };
  try {
    const rewrapped = await sealUnderCurrent(deps, key, plaintext, input.aad);
    return { plaintext, keyVersionId, rewrapped };
  } catch (err) {
    zeroize(plaintext);
    throw err;
  }
}

/** Unwraps a blob and wraps the same DEK under the current version; the DEK never leaves. */
export async function rewrap(deps: KeyDeps, input: UnwrapInput): Promise<RewrapResult> {
  const { key, plaintext, keyVersionId } = await open(deps, input);
  try {
    const sealed = await sealUnderCurrent(deps, key, plaintext, input.aad);
    return { ciphertext: sealed.ciphertext, keyVersionId, rewrappedKeyVersionId: sealed.keyVersionId };
  } finally {
    zeroize(plaintext);
  }
}

async function open(
  deps: KeyDeps,
  input: UnwrapInput,
): Promise<{ key: KeyRecord; plaintext: Buffer; keyVersionId: string }> {
  checkAad(input.aad);
  let key = await loadKey(deps, input.instance, input.keyId);
  assertUsable(key);
  const blob = decodeWrappedDek(input.ciphertext);
  const usable = (k: KeyRecord) => k.versions.find((v) => v.id === blob.keyVersionId && !isDisabled(v));
  if (usable(key) === undefined) {
    // Another gateway may have rotated the key (or enabled the version) a moment ago: look again.
    key = await loadKey(deps, input.instance, input.keyId, { fresh: true });
    assertUsable(key);
    if (usable(key) === undefined) {
      if (key.versions.some((v) => v.id === blob.keyVersionId)) {
        // Only this blob is refused: not a key state (a shim keeps its DEKs and stays healthy).
        throw new KeygateError('KEY_VERSION_DISABLED_ERR', {
          detail: { keyId: input.keyId, keyVersion: blob.keyVersionId },
        });
      }
      throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { detail: { reason: 'unknown key version' } });
    }
  }
  const ref = { instance: input.instance, crkId: input.keyId, versionId: blob.keyVersionId };
  const aad = wrapAad(blob.header, input.instance, input.keyId, input.aad);
  const plaintext = await onObject(deps, ref, () =>
    deps.hsm.decrypt(ref, { iv: blob.iv, ciphertext: blob.ciphertext, tag: blob.tag }, aad),
  );
  return { key, plaintext, keyVersionId: blob.keyVersionId };
}

async function sealUnderCurrent(
  deps: KeyDeps,
  key: KeyRecord,
  plaintext: Buffer,
  aad: readonly string[],
): Promise<{ ciphertext: Buffer; keyVersionId: string }> {
  // Every GCM encryption spends the version's usage budget (which may rotate to a new version).
  const version = deps.usage === undefined ? currentVersion(key) : await deps.usage.take(deps, key);
  const header = encodeWrapHeader(version.id, deps.hsm.ivBytes);
  const ref = { instance: key.instance, crkId: key.id, versionId: version.id };
  const sealed = await onObject(deps, ref, () =>
    deps.hsm.encrypt(ref, plaintext, wrapAad(header, key.instance, key.id, aad)),
  );
  return {
    ciphertext: encodeWrappedDek(header, sealed.iv, sealed.ciphertext, sealed.tag),
    keyVersionId: version.id,
  };
}

/**
 * Runs an HSM call on `ref`'s object. Only the store says a key is destroyed: when the HSM cannot
 * find the object, the key is re-read; destroyed (a destroy raced this request) is KEY_DELETED_ERR,
 * anything else is a device fault that the HSM is told to recover from (503, shims keep their keys).
 */
async function onObject<T>(deps: KeyDeps, ref: KeyObjectRef, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (!isKeygateError(err) || err.code !== 'HSM_KEY_OBJECT_MISSING') throw err;
    const key = await loadKey(deps, ref.instance, ref.crkId, { fresh: true });
    if (key.state === KeyState.DESTROYED) {
      throw new KeygateError('KEY_DELETED_ERR', { detail: { keyId: key.id } });
    }
    deps.hsm.reportMissing(ref);
    throw err;
  }
}

function checkAad(aad: readonly string[]): void {
  if (aad.length > WRAP_LIMITS.maxAadStrings)
    throw new KeygateError('INVALID_FIELD_ERR', { detail: { field: 'aad' } });
  for (const a of aad) {
    if (Buffer.byteLength(a, 'utf8') > WRAP_LIMITS.maxAadStringBytes) {
      throw new KeygateError('INVALID_FIELD_ERR', { detail: { field: 'aad' } });
    }
  }
}
