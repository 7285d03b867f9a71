import type { AuditVerifyReport } from './core/audit/chain-verifier.js';

/** The lines `audit verify` prints: OK or FAILED, the head to note, and every acknowledged loss. */
export function describeReport(r: AuditVerifyReport): string[] {
  const kinds = [`${r.events} events`, `${r.checkpoints} checkpoints`, `${r.starts} starts`];
  if (r.losses.length > 0)
    kinds.push(`${r.losses.length} acknowledged loss${r.losses.length > 1 ? 'es' : ''}`);
  const counts = `${r.files} files, ${r.records} records (${kinds.join(', ')}), last seq ${r.lastSeq}, ${r.sealed ? 'sealed' : 'not sealed'}`;
  const p = r.problem;
  const lines: string[] = [];
  if (r.ok && p === undefined) lines.push(`OK: ${counts}`);
  else if (p === undefined) lines.push(`FAILED: ${counts}`);
  else if (p.line === 0 || p.file === '') lines.push(`FAILED: ${p.kind}: ${p.message}`);
  else lines.push(`FAILED: ${p.kind} in ${p.file} line ${p.line}: ${p.message} (${counts} before it)`);
  if (r.records > 0) lines.push(`head: seq ${r.lastSeq} hash ${r.lastHash} boot ${r.lastBoot}`);
  for (const l of r.losses) {
    const anchor =
      l.anchorSeq === undefined
        ? 'no valid anchor'
        : `the anchor said seq ${l.anchorSeq} (boot ${l.anchorBoot})`;
    lines.push(
      `loss acknowledged at seq ${l.seq} (${l.time}): ${l.problem}: ${anchor}, found seq ${l.foundSeq}; reason: ${JSON.stringify(l.reason)}`,
    );
  }
  return lines;
}
