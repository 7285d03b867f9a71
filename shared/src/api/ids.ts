/**
 * The one definition of the ids the gateway and the shim check (docs/identity.md). Every place that
 * reads an instance id or a root key id (the `bluemix-instance` header, the identities and
 * allow-list config, token claims, `KP_CONFIG`, the CLIs) uses these, so an id valid in one place
 * is valid in all.
 */

/**
 * An instance id: 1..128 of letters, digits and `._:-`, starting with a letter or digit (so
 * `__proto__` can never be one, and it fits a header, a log field and an HSM object label).
 */
export const INSTANCE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * A root key id (the path's key id, `KP_CONFIG.CRK_ID`): 1..128 of letters, digits and `._-`,
 * starting with a letter or digit. Wider than the UUIDs the gateway and Key Protect issue; no `:`,
 * which separates the parts of an HSM object label.
 */
export const KEY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** What an instance id must look like, in words, for error messages. */
export const INSTANCE_ID_RULE =
  'an instance id: 1..128 letters, digits and ._:-, starting with a letter or digit';

/** What a root key id must look like, in words, for error messages. */
export const KEY_ID_RULE = 'a key id: 1..128 letters, digits and ._-, starting with a letter or digit';

/** True when `value` is a string that is a valid instance id. */
export function isInstanceId(value: unknown): value is string {
  return typeof value === 'string' && INSTANCE_ID_PATTERN.test(value);
}

/** True when `value` is a string that is a valid root key id. */
export function isKeyId(value: unknown): value is string {
  return typeof value === 'string' && KEY_ID_PATTERN.test(value);
}
