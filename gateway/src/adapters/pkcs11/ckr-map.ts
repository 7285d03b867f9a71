import { type ErrorCode, KeygateError } from '@keygate/shared/errors';

/**
 * Translates PKCS#11 return values (pkcs11js `Pkcs11Error`: message = CKR_* name) into keygate
 * codes. The vendor name stays in the error detail (`ckr`) for logs; clients see only our code.
 */

/** How the pool reacts to a failure. */
export type CkrKind =
  | 'session' // the session is gone: drop sessions, reopen (and log in again)
  | 'device' // the token or device failed: drop sessions, reopen with backoff
  | 'handle' // a cached object handle is stale: forget it and look again
  | 'pin' // the login was refused: the token is unusable until an operator acts
  | 'data' // the input does not decrypt: the caller's ciphertext is wrong
  | 'other';

const KINDS: Readonly<Record<string, CkrKind>> = {
  CKR_SESSION_HANDLE_INVALID: 'session',
  CKR_SESSION_CLOSED: 'session',
  CKR_USER_NOT_LOGGED_IN: 'session',
  CKR_DEVICE_ERROR: 'device',
  CKR_DEVICE_REMOVED: 'device',
  CKR_DEVICE_MEMORY: 'device',
  CKR_TOKEN_NOT_PRESENT: 'device',
  CKR_TOKEN_NOT_RECOGNIZED: 'device',
  CKR_SLOT_ID_INVALID: 'device',
  CKR_CRYPTOKI_NOT_INITIALIZED: 'device',
  CKR_OBJECT_HANDLE_INVALID: 'handle',
  CKR_KEY_HANDLE_INVALID: 'handle',
  CKR_PIN_INCORRECT: 'pin',
  CKR_PIN_INVALID: 'pin',
  CKR_PIN_LEN_RANGE: 'pin',
  CKR_PIN_LOCKED: 'pin',
  CKR_PIN_EXPIRED: 'pin',
  CKR_ENCRYPTED_DATA_INVALID: 'data',
  CKR_ENCRYPTED_DATA_LEN_RANGE: 'data',
};

/** The CKR_* name of a pkcs11js error, or undefined for anything else. */
export function ckrName(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  return /^CKR_[A-Z0-9_]+$/.test(err.message) ? err.message : undefined;
}

/** The kind of a failure; `decrypting` makes CKR_GENERAL_ERROR a data error (SoftHSM2's bad GCM tag). */
export function ckrKind(err: unknown, decrypting = false): CkrKind {
  const name = ckrName(err);
  if (name === undefined) return 'other';
  // SoftHSM2 answers a wrong GCM tag with CKR_GENERAL_ERROR; elsewhere it is a device failing
  // (a network HSM mid-failover): the pool tries a decrypt once more before calling it data.
  if (name === 'CKR_GENERAL_ERROR') return decrypting ? 'data' : 'device';
  return KINDS[name] ?? 'other';
}

/** Fresh-session retries after a failed call, at most (SessionPool.use and the worker lanes). */
export const MAX_RETRIES = 2;

/**
 * Whether a call that failed on try `attempt` (0 first) is tried again, and why: `fresh` for a
 * decrypt's first CKR_GENERAL_ERROR (once more on a fresh session before it counts as a bad
 * ciphertext: SoftHSM2's wrong tag, and a network HSM mid-failover), `session`/`device` (the
 * session or the device is gone: reopen), `handle` (a stale object handle); undefined: give up.
 */
export function retryReason(
  err: unknown,
  decrypting: boolean,
  attempt: number,
): 'fresh' | 'session' | 'device' | 'handle' | undefined {
  if (decrypting && attempt === 0 && ckrName(err) === 'CKR_GENERAL_ERROR') return 'fresh';
  const kind = ckrKind(err, decrypting);
  if (attempt >= MAX_RETRIES) return undefined;
  return kind === 'session' || kind === 'device' || kind === 'handle' ? kind : undefined;
}

/** The keygate error for a PKCS#11 failure, with the vendor name and method as log detail. */
export function ckrToKeygate(err: unknown, decrypting = false): KeygateError {
  const detail = vendorDetail(err);
  return new KeygateError(codeFor(err, detail.ckr, decrypting), { cause: err, detail });
}

/** HSM_UNAVAILABLE whatever the CKR (used when no session could be had), with the same log detail. */
export function ckrUnavailable(err: unknown): KeygateError {
  return new KeygateError('HSM_UNAVAILABLE', { cause: err, detail: vendorDetail(err) });
}

function vendorDetail(err: unknown): { ckr: string; method: string } {
  const ckr = ckrName(err) ?? 'not a PKCS#11 error';
  const method = err instanceof Error ? String((err as { method?: unknown }).method ?? '') : '';
  return { ckr, method };
}

function codeFor(err: unknown, ckr: string, decrypting: boolean): ErrorCode {
  switch (ckrKind(err, decrypting)) {
    case 'session':
    case 'device':
      return 'HSM_UNAVAILABLE';
    case 'pin':
      return ckr === 'CKR_PIN_LOCKED' || ckr === 'CKR_PIN_EXPIRED' ? 'HSM_PIN_LOCKED' : 'HSM_PIN_INCORRECT';
    case 'data':
      return 'UNPROCESSABLE_CIPHERTEXT_ERR';
    default:
      return 'HSM_ERROR';
  }
}
