import { readdir } from 'node:fs/promises';

/** `audit-<startSeq, 12 digits>-<UTC yyyymmddThhmmssSSSZ>.jsonl` */
const FILE_NAME = /^audit-(\d{1,16})-(\d{8}T\d{9}Z)\.jsonl$/;

export interface AuditFile {
  readonly name: string;
  /** seq of the file's first record. */
  readonly startSeq: number;
  /** When the file was started (ms since the epoch). */
  readonly startedAt: number;
}

/** The name of a file whose first record is `startSeq`, started at `at`. */
export function auditFileName(startSeq: number, at: Date): string {
  const stamp = at.toISOString().replace(/[-:.]/g, '');
  return `audit-${String(startSeq).padStart(12, '0')}-${stamp}.jsonl`;
}

/** Parses an audit file name, or undefined for any other file. */
export function parseAuditFileName(name: string): AuditFile | undefined {
  const m = FILE_NAME.exec(name);
  if (m?.[1] === undefined || m[2] === undefined) return undefined;
  const s = m[2];
  const iso = `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}T${s.slice(9, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}.${s.slice(15, 18)}Z`;
  return { name, startSeq: Number(m[1]), startedAt: Date.parse(iso) };
}

/** The audit files of `dir`, oldest (lowest startSeq) first. Other files are ignored. */
export async function listAuditFiles(dir: string): Promise<AuditFile[]> {
  const names = await readdir(dir);
  return names
    .map(parseAuditFileName)
    .filter((f): f is AuditFile => f !== undefined)
    .sort((a, b) => a.startSeq - b.startSeq || a.startedAt - b.startedAt || (a.name < b.name ? -1 : 1));
}
