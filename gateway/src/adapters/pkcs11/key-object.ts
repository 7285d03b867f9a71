import { endianness } from 'node:os';
import { KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import pkcs11js from 'pkcs11js';

type Handle = Buffer;

/** The key size of every root-key version (AES-256). */
export const KEY_BYTES = 32;

/** CKA_ID of a key object: its version id, the last part of its label (keygate:<instance>:<crk>:<version>). */
export function objectId(label: string): Buffer {
  return Buffer.from(label.slice(label.lastIndexOf(':') + 1), 'ascii');
}

/** One CK_MECHANISM_TYPE (CK_ULONG, native byte order) as CKA_ALLOWED_MECHANISMS wants it. */
function mechanismList(...mechanisms: number[]): Buffer {
  const b = Buffer.alloc(8 * mechanisms.length);
  mechanisms.forEach((m, i) => {
    if (endianness() === 'LE') b.writeBigUInt64LE(BigInt(m), i * 8);
    else b.writeBigUInt64BE(BigInt(m), i * 8);
  });
  return b;
}

/**
 * The template of a new root-key version: an AES-256 token object that is sensitive, never
 * extractable, usable for encrypt and decrypt only (no wrap, unwrap, derive, sign or verify).
 * `restrict` (profiles.ts) also pins CKA_ALLOWED_MECHANISMS to CKM_AES_GCM and makes it neither
 * modifiable nor copyable (PKCS#11 2.40 attributes some modules refuse).
 */
export function keyTemplate(label: string, restrict: boolean): pkcs11js.Template {
  return [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
    { type: pkcs11js.CKA_VALUE_LEN, value: KEY_BYTES },
    { type: pkcs11js.CKA_TOKEN, value: true },
    { type: pkcs11js.CKA_PRIVATE, value: true },
    { type: pkcs11js.CKA_SENSITIVE, value: true },
    { type: pkcs11js.CKA_EXTRACTABLE, value: false },
    { type: pkcs11js.CKA_ENCRYPT, value: true },
    { type: pkcs11js.CKA_DECRYPT, value: true },
    { type: pkcs11js.CKA_WRAP, value: false },
    { type: pkcs11js.CKA_UNWRAP, value: false },
    { type: pkcs11js.CKA_DERIVE, value: false },
    { type: pkcs11js.CKA_SIGN, value: false },
    { type: pkcs11js.CKA_VERIFY, value: false },
    { type: pkcs11js.CKA_LABEL, value: label },
    { type: pkcs11js.CKA_ID, value: objectId(label) },
    ...(restrict
      ? [
          { type: pkcs11js.CKA_ALLOWED_MECHANISMS, value: mechanismList(pkcs11js.CKM_AES_GCM) },
          { type: pkcs11js.CKA_MODIFIABLE, value: false },
          { type: pkcs11js.CKA_COPYABLE, value: false },
        ]
      : []),
  ];
}

/** No object has the label (destroyed, or the token cannot see it now: only the store can tell). */
export class KeyObjectMissing extends Error {}

/** An object was found under the label but fails the checks: it is never used. */
export class KeyObjectRefused extends Error {}

/**
 * Secret-key objects (CKO_SECRET_KEY) that also match `attributes`, at most `max`, in batches of
 * up to 256; the search is always finalised, so the session can search again.
 */
export function findSecretKeys(
  lib: pkcs11js.PKCS11,
  session: Handle,
  attributes: pkcs11js.Template,
  max: number,
): Handle[] {
  lib.C_FindObjectsInit(session, [
    { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
    ...attributes,
  ]);
  const found: Handle[] = [];
  try {
    while (found.length < max) {
      const batch = lib.C_FindObjects(session, Math.min(256, max - found.length));
      if (batch.length === 0) break;
      found.push(...batch);
    }
  } finally {
    lib.C_FindObjectsFinal(session);
  }
  return found;
}

/**
 * Finds the root-key object of `label` by class, key type, label and CKA_ID. Exactly one must
 * match, and it must be sensitive, never extractable, generated on the token (CKA_LOCAL) and 32
 * bytes, or it is refused (KeyObjectRefused): an object planted under a keygate label, imported
 * from outside or copied in clear, is never used to wrap a DEK.
 */
export function findKeyObject(
  lib: pkcs11js.PKCS11,
  session: Handle,
  label: string,
  requireLocal = true,
): Handle {
  const found = findSecretKeys(
    lib,
    session,
    [
      { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      { type: pkcs11js.CKA_LABEL, value: label },
      { type: pkcs11js.CKA_ID, value: objectId(label) },
    ],
    2,
  );
  const [handle] = found;
  if (handle === undefined) throw new KeyObjectMissing(label);
  if (found.length > 1) throw new KeyObjectRefused(`more than one key object is labelled ${label}`);
  const problem = keyObjectProblem(lib, session, handle, requireLocal);
  if (problem !== undefined) throw new KeyObjectRefused(`key object ${label} ${problem}`);
  return handle;
}

/** Why a found object must not be used as a root key, or undefined when it may. */
export function keyObjectProblem(
  lib: pkcs11js.PKCS11,
  session: Handle,
  handle: Handle,
  /** false only for modules that mark their own generated keys not local (profile nss). */
  requireLocal = true,
): string | undefined {
  let attrs: pkcs11js.Template;
  try {
    attrs = lib.C_GetAttributeValue(session, handle, [
      { type: pkcs11js.CKA_SENSITIVE },
      { type: pkcs11js.CKA_EXTRACTABLE },
      { type: pkcs11js.CKA_NEVER_EXTRACTABLE },
      { type: pkcs11js.CKA_LOCAL },
      { type: pkcs11js.CKA_VALUE_LEN },
    ]);
  } catch (err) {
    // A module that cannot say is not trusted: the attributes are standard PKCS#11 2.x.
    return `attributes unreadable (${err instanceof Error ? err.message : 'error'})`;
  }
  const value = (type: number) => attrs.find((a) => a.type === type)?.value;
  const flag = (type: number) => {
    const v = value(type);
    return Buffer.isBuffer(v) ? v.length > 0 && v[0] !== 0 : v === true;
  };
  const len = value(pkcs11js.CKA_VALUE_LEN);
  const bytes = Buffer.isBuffer(len) ? readUlong(len) : Number(len);
  if (!flag(pkcs11js.CKA_SENSITIVE)) return 'is not sensitive';
  if (flag(pkcs11js.CKA_EXTRACTABLE)) return 'is extractable';
  if (!flag(pkcs11js.CKA_NEVER_EXTRACTABLE)) return 'was extractable once';
  if (requireLocal && !flag(pkcs11js.CKA_LOCAL)) return 'was not generated on the token (imported)';
  if (bytes !== KEY_BYTES) return `is ${bytes} bytes, not ${KEY_BYTES}`;
  return undefined;
}

/** A CK_ULONG as the module returned it (native byte order, 4 or 8 bytes). */
function readUlong(b: Buffer): number {
  if (b.length === 8) return Number(endianness() === 'LE' ? b.readBigUInt64LE(0) : b.readBigUInt64BE(0));
  if (b.length === 4) return endianness() === 'LE' ? b.readUInt32LE(0) : b.readUInt32BE(0);
  return Number.NaN;
}

/** HSM_KEY_OBJECT_REFUSED, logged as an error: someone placed or changed an object under a keygate label. */
export function refused(logger: Logger, label: string, reason: string): KeygateError {
  logger.error({ label, reason }, "key object refused: it fails keygate's checks and is not used");
  return new KeygateError('HSM_KEY_OBJECT_REFUSED', { detail: { label, reason } });
}
