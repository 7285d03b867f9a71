import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { AuditVerifyKey } from '../../core/audit/audit-signer.js';
import {
  type AuditVerifyReport,
  ChainVerifier,
  type ChainVerifyOptions,
} from '../../core/audit/chain-verifier.js';
import { listAuditFiles } from './audit-files.js';

/**
 * Verifies every audit file of `dir` in seq order against the chain and the checkpoint keys.
 * Returns ok, or the first problem with its file and line (see ChainVerifier). A file whose name
 * says it starts at another seq than its first record also counts as a removal or reorder.
 */
export async function verifyAuditDir(
  dir: string,
  publicKeys: readonly AuditVerifyKey[],
  opts: ChainVerifyOptions = {},
): Promise<AuditVerifyReport> {
  const files = await listAuditFiles(dir);
  const verifier = new ChainVerifier(publicKeys, opts);
  for (const file of files) {
    const before = verifier.lastSeq;
    const bytes = await readFile(join(dir, file.name));
    if (bytes.length > 0 && before > 0 && file.startSeq !== before + 1) {
      const kind = file.startSeq > before + 1 ? 'removed' : 'reordered';
      return {
        ...verifier.finish(),
        ok: false,
        problem: {
          kind,
          file: file.name,
          line: 1,
          message: `file should start at seq ${before + 1} but its name says ${file.startSeq}`,
        },
      };
    }
    if (verifier.addFile(file.name, bytes) !== undefined) break;
  }
  return verifier.finish();
}
