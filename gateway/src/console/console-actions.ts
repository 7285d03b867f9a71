import { asKeygateError, isKeygateError, KeygateError } from '@keygate/shared/errors';
import { KEY_GUARD_CODES } from '../core/audit/audit-event.js';
import type { GuardedOperation } from '../core/auth/role-policy.js';
import { rotationReasons } from '../core/fleet/version-guard.js';
import { type ConsoleCore, holds, outcomeOf } from './console-core.js';
import type { ConsoleCtx } from './console-env.js';

/** What an action reports for its audit record and the message shown after it. */
export interface ActionResult {
  readonly keyId?: string | undefined;
  readonly keyVersion?: string | undefined;
  readonly message: string;
}

/**
 * Runs a key action of the console as the API does: the identity needs `keys:admin` on the
 * instance (RolePolicy), the audit log must be available before the action (fail closed), and the
 * action is audited (identity `console:<name>`) before its result is shown. Errors become the
 * catalogue's text and code in the flash message; the redirect goes back to `back`.
 */
export async function runAction(
  c: ConsoleCtx,
  core: ConsoleCore,
  op: GuardedOperation,
  target: { instance: string; keyId?: string | undefined },
  back: string,
  action: () => Promise<ActionResult>,
): Promise<Response> {
  const started = performance.now();
  const identity = c.get('identity');
  const session = c.get('session');
  const base = { identity: identity.name, instance: target.instance, keyId: target.keyId };
  let result: ActionResult;
  try {
    if (!holds(identity, target.instance, 'keys:admin')) {
      throw new KeygateError('FORBIDDEN_ERR', {
        detail: { subject: `console:${identity.name}`, instance: target.instance, role: 'keys:admin' },
      });
    }
    core.deps.audit.assertAvailable();
    result = await action();
  } catch (err) {
    const k = asKeygateError(err);
    if (k.code === 'INTERNAL_ERR') core.deps.logger.error({ err: k.toLog(), op }, 'console action failed');
    await core.auditQuietly(core.event(c, op, outcomeOf(k), started, { ...base, errorCode: k.code }));
    // A refused version disable says why (the rotation's blockers, docs/rotation.md).
    const why = rotationReasons(err);
    const reasons = why.length === 0 ? '' : ` ${why.join(' ')}`;
    session.flash = { ok: false, text: `${op} refused: ${k.message} (${k.code})${reasons}` };
    return c.redirect(back, 303);
  }
  try {
    await core.audit(
      core.event(c, op, 'success', started, {
        ...base,
        keyId: result.keyId ?? target.keyId,
        keyVersion: result.keyVersion,
      }),
    );
  } catch (err) {
    const code = isKeygateError(err) && KEY_GUARD_CODES.has(err.code) ? err.code : 'AUDIT_UNAVAILABLE';
    session.flash = { ok: false, text: `${op}: the audit record could not be written (${code})` };
    return c.redirect(back, 303);
  }
  session.flash = { ok: true, text: result.message };
  return c.redirect(back, 303);
}
