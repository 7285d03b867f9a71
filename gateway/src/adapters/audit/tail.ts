import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditRecord } from '../../core/audit/audit-record.js';
import { splitLines } from '../../core/audit/chain-verifier.js';
import { formatRecord } from '../../core/audit/record-format.js';
import { listAuditFiles } from './audit-files.js';

/**
 * The last `n` records of the log in `dir`, oldest first, one readable line each (for
 * `keygate-gateway audit tail`). Does not verify the chain; a torn or unreadable line is shown as such.
 */
export async function tailAudit(dir: string, n: number): Promise<string[]> {
  const files = await listAuditFiles(dir);
  const out: string[] = [];
  for (let i = files.length - 1; i >= 0 && out.length < n; i--) {
    const file = files[i];
    if (file === undefined) continue;
    const { complete, torn } = splitLines(await readFile(join(dir, file.name)));
    const lines = complete.map((l) => describe(l, file.name));
    if (torn !== undefined) lines.push(`(torn last line in ${file.name}: ${torn.length} bytes)`);
    out.unshift(...lines.slice(Math.max(0, lines.length - (n - out.length))));
  }
  return out;
}

function describe(line: Uint8Array, file: string): string {
  try {
    return formatRecord(JSON.parse(Buffer.from(line).toString('utf8')) as AuditRecord);
  } catch {
    return `(unreadable line in ${file})`;
  }
}
