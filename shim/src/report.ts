import { encodeShimReport } from '@keygate/shared';
import type { KmsCore } from './core/kms-core.js';

/** The KMS APIs the shim serves on its socket (kms-server.ts registers both). */
const APIS = ['v2', 'v1beta1'] as const;
/** The report's rule for short texts: printable ASCII, 1 to 200 characters. */
const MAX_TEXT = 200;

/**
 * The shim report header (shared/api/shim-report.ts) for the fleet view, built once per key_id
 * refresh from what the core holds now: node name, shim version, the key_id and the root-key
 * version behind it, the APIs served, the DEK cache size and the health text. No secret is in it.
 * Undefined only if it cannot be encoded (it would exceed the header limit).
 */
export function shimReportHeader(nodeName: string, version: string, core: KmsCore): string | undefined {
  const status = core.status();
  const keyId = status.keyId === '' ? undefined : status.keyId;
  try {
    return encodeShimReport({
      node: nodeName,
      version: printable(version),
      keyId,
      keyVersion: keyId?.slice(keyId.lastIndexOf('/') + 1),
      apis: APIS,
      cacheSize: core.stats().cacheSize,
      health: printable(status.healthz),
    });
  } catch {
    return undefined;
  }
}

function printable(text: string): string {
  const t = text.replace(/[^\x20-\x7e]/g, '?').slice(0, MAX_TEXT);
  return t === '' ? '?' : t;
}
