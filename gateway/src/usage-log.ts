import type { Logger } from '@keygate/shared/log';
import type { UsageEvent } from './core/keys/usage-budget.js';

/** Logs a usage-limit event (names and counts only; docs/gateway.md "Usage limits"). */
export function logUsageEvent(log: Logger, event: UsageEvent): void {
  const { type, ...fields } = event;
  if (type === 'warn') {
    log.warn(
      fields,
      'key version has reserved warnAt AES-GCM encryptions (NIST SP 800-38D allows 2^32 with random IVs): it is rotated or refused at rotateAt',
    );
  } else if (type === 'rotated') {
    log.warn(fields, 'key rotated automatically by keys.usageLimit (new wraps use the new version)');
  } else {
    log.error(
      fields,
      'key version reached keys.usageLimit.rotateAt: wraps answer 409 KEY_USAGE_LIMIT_ERR until the key is rotated',
    );
  }
}
