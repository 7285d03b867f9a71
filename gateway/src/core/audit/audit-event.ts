import type { ErrorCode } from '@keygate/shared/errors';

/**
 * One audited action. Never carries key material, plaintext, API keys or tokens: only names,
 * ids, outcomes and a short hash of the wrapped DEK.
 */
export type AuditOperation =
  | 'wrap'
  | 'unwrap'
  | 'rewrap'
  | 'token.issue'
  | 'key.create'
  | 'key.list'
  | 'key.get'
  | 'key.metadata'
  | 'key.versions'
  | 'key.rotate'
  | 'key.disable'
  | 'key.enable'
  | 'key.destroy'
  | 'key.version.disable'
  | 'key.version.enable'
  | 'key.rotation'
  | 'identity.list'
  | 'identity.get'
  | 'identity.create'
  | 'identity.update'
  | 'identity.delete'
  | 'apikey.create'
  | 'apikey.revoke'
  | 'fleet.read'
  /** The web console: a login (refused ones too) and a logout; its key actions use the key operations. */
  | 'console.login'
  | 'console.logout'
  | 'cluster.add'
  | 'cluster.remove';

export type AuditOutcome = 'success' | 'failure' | 'denied';

export interface AuditEvent {
  /** ISO 8601 time the operation finished. */
  readonly time: string;
  readonly requestId: string;
  readonly correlationId?: string | undefined;
  /** Client certificate identity (SAN URI or CN). */
  readonly certIdentity?: string | undefined;
  /** Token subject (service identity name). */
  readonly subject?: string | undefined;
  readonly instance?: string | undefined;
  readonly keyId?: string | undefined;
  readonly keyVersion?: string | undefined;
  /** Identity operations: the identity name or API key id changed or read (never a key or hash). */
  readonly target?: string | undefined;
  readonly operation: AuditOperation;
  readonly outcome: AuditOutcome;
  readonly errorCode?: ErrorCode | undefined;
  readonly latencyMs: number;
  /** shortHash() of the wrapped DEK involved (the input for unwrap/rewrap, the output for wrap). */
  readonly wrappedDekHash?: string | undefined;
  /** ISO 8601 time by which the caller wanted its answer (from `x-keygate-timeout-ms`), when it said. */
  readonly deadline?: string | undefined;
  /**
   * A summary of refused requests: how many refusals with the same certificate, subject,
   * operation, instance, key and error code this one record stands for (they were not written
   * one by one), counted from `since` to `time`. Absent on ordinary records.
   */
  readonly count?: number | undefined;
  /** With `count`: ISO 8601 time of the first refusal summarised. */
  readonly since?: string | undefined;
  /**
   * A rotation the gateway made by itself (`keys.usageLimit`, subject `system:usage-limit`): the
   * version it replaced (`keyVersion` is the new one), why (`count`: rotateAt reached, `age`:
   * rotateAfter passed) and how many encryptions the old version had reserved in the store.
   * `key.version.disable` with reason `forced`: `--force` / `{"force":true}` overrode the
   * rotation guard (docs/rotation.md).
   */
  readonly fromKeyVersion?: string | undefined;
  readonly reason?: 'count' | 'age' | 'forced' | undefined;
  readonly reserved?: number | undefined;
}

/**
 * Where audit records go. `append` resolves only once the record is durable; a request is
 * answered after that. A sink that shares a transaction with the key store (PostgreSQL) may
 * refuse a key use whose key changed state meanwhile with that key-state error (KEY_GUARD_CODES):
 * the record then says so, and the request answers that error. `assertAvailable` throws AUDIT_UNAVAILABLE when records cannot be
 * written right now, so a key operation is refused before it touches the HSM (fail closed).
 */
export interface AuditSink {
  assertAvailable(): void;
  append(event: AuditEvent): Promise<void>;
  close(): Promise<void>;
}

/** Errors with which a sink's `append` refuses a key use (the destroy guard); anything else is AUDIT_UNAVAILABLE. */
export const KEY_GUARD_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'KEY_DELETED_ERR',
  'KEY_ACTION_INVALID_STATE_ERR',
  'KEY_NOT_FOUND_ERR',
]);
