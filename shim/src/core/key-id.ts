import { isValidKeyVersionId, SHIM_LIMITS, sha256 } from '@keygate/shared';

const PREFIX = 'keygate/';

/**
 * The key_id prefix of one root key: `keygate/<INSTANCE_ID>/<CRK_ID>/`, or, when that would not
 * leave room for a 64-byte version id inside the 255-byte header limit, `keygate/<hash>/` with a
 * hash of both ids. Pure function of config, so every shim on every node computes the same one.
 */
export function keyIdPrefix(instanceId: string, crkId: string): string {
  const readable = `${PREFIX}${instanceId}/${crkId}/`;
  if (Buffer.byteLength(readable) + 64 <= SHIM_LIMITS.maxKeyIdBytes) return readable;
  return `${PREFIX}${sha256(`${instanceId}\0${crkId}`).subarray(0, 16).toString('hex')}/`;
}

/** The key_id of a root key version: prefix + the gateway's key version id. */
export function keyIdFor(prefix: string, keyVersionId: string): string {
  if (!isValidKeyVersionId(keyVersionId)) throw new RangeError('invalid key version id');
  return `${prefix}${keyVersionId}`;
}

/** True when `keyId` names some version of the root key with this prefix. */
export function isKeyIdOf(prefix: string, keyId: string): boolean {
  return keyId.startsWith(prefix) && isValidKeyVersionId(keyId.slice(prefix.length));
}
