import type { AuditRecord } from './audit-record.js';

/** One line a person can read, for `keygate-gateway audit tail`. */
export function formatRecord(r: AuditRecord): string {
  const head = `#${r.seq} ${r.time}`;
  if (r.type === 'checkpoint') return `${head} checkpoint (${r.reason}, ${r.count} events, key ${r.keyId})`;
  if (r.type === 'start') return `${head} start (boot ${r.boot}, key ${r.keyId})`;
  if (r.type === 'loss') {
    const anchor =
      r.anchorSeq === undefined
        ? 'no valid anchor'
        : `the anchor said seq ${r.anchorSeq} (boot ${r.anchorBoot})`;
    return `${head} LOSS acknowledged (${r.problem}: ${anchor}, found seq ${r.foundSeq}; reason: ${JSON.stringify(r.reason)}; key ${r.keyId})`;
  }
  if (r.type === 'recovery') {
    return `${head} recovery (${r.reason}${r.tornBytes > 0 ? `, ${r.tornBytes} torn bytes cut from ${r.file}` : ''})`;
  }
  const parts = [head, r.operation, r.outcome + (r.errorCode === undefined ? '' : `:${r.errorCode}`)];
  const fields: [string, string | number | undefined][] = [
    ['instance', r.instance],
    [
      'key',
      r.keyId === undefined ? undefined : r.keyId + (r.keyVersion === undefined ? '' : `@${r.keyVersion}`),
    ],
    ['target', r.target],
    ['subject', r.subject],
    ['cert', r.certIdentity],
    ['dek', r.wrappedDekHash],
    ['req', r.requestId],
    ['corr', r.correlationId],
  ];
  for (const [k, v] of fields) if (v !== undefined) parts.push(`${k}=${v}`);
  if (r.fromKeyVersion !== undefined) parts.push(`from=${r.fromKeyVersion}`);
  if (r.reason !== undefined) parts.push(`reason=${r.reason}`);
  if (r.reserved !== undefined) parts.push(`reserved=${r.reserved}`);
  if (r.count !== undefined) parts.push(`x${r.count} since ${r.since ?? '?'}`);
  parts.push(`${r.latencyMs}ms`);
  return parts.join(' ');
}
