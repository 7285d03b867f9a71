import type { AuditSigner, AuditVerifyKey } from './audit-signer.js';

/** `format` of an anchor; part of what its signature covers. */
export const ANCHOR_FORMAT = 'keygate-audit-anchor/v1';

/** How far the log had durably reached: the last record's seq and line hash, and the run that wrote it. */
export interface AuditHead {
  readonly seq: number;
  /** Line hash of record `seq`: the `prev` the next record will carry. */
  readonly hash: string;
  /** `boot` of the start record of the run that wrote it. */
  readonly boot: number;
}

/**
 * A signed note, kept outside the log folder, of how far the log had reached. The writer checks
 * it at open: a log behind its anchor (erased, cut back, replaced) refuses to start.
 */
export interface AuditAnchor extends AuditHead {
  readonly format: typeof ANCHOR_FORMAT;
  readonly time: string;
  readonly keyId: string;
  /** base64url Ed25519 signature over anchorSigningInput(). */
  readonly sig: string;
}

/** What reading the anchor found. */
export type AnchorReading =
  | { readonly kind: 'none' }
  | { readonly kind: 'anchor'; readonly anchor: AuditAnchor }
  /** Something is stored but it is not an anchor (edited, or another file). */
  | { readonly kind: 'invalid'; readonly reason: string };

/**
 * Where the anchor is kept: a file beside the audit folder today (adapters/audit/anchor-file.ts),
 * a database row later. `write` resolves once the new anchor is durable.
 */
export interface AuditAnchorStore {
  /** Where it is, for messages (a path, a table). */
  readonly location: string;
  /** The stored anchor; throws only for I/O errors. */
  read(): Promise<AnchorReading>;
  write(anchor: AuditAnchor): Promise<void>;
}

const HEX64 = /^[0-9a-f]{64}$/;
const positive = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1;

/** The bytes an anchor signature covers. */
export function anchorSigningInput(a: Omit<AuditAnchor, 'sig'>): Buffer {
  return Buffer.from(`${a.format}\n${a.boot}\n${a.seq}\n${a.hash}\n${a.time}\n${a.keyId}`, 'utf8');
}

/** A signed anchor for `head`, stamped `time`. */
export async function signAnchor(head: AuditHead, signer: AuditSigner, time: Date): Promise<AuditAnchor> {
  const unsigned = {
    format: ANCHOR_FORMAT,
    boot: head.boot,
    seq: head.seq,
    hash: head.hash,
    time: time.toISOString(),
    keyId: signer.keyId,
  } as const;
  const sig = Buffer.from(await signer.sign(anchorSigningInput(unsigned))).toString('base64url');
  return { ...unsigned, sig };
}

/** Parses stored anchor text; says why when it is not an anchor. Does not check the signature. */
export function parseAnchorText(text: string): AnchorReading {
  let v: Partial<Record<keyof AuditAnchor, unknown>>;
  try {
    v = JSON.parse(text) as typeof v;
  } catch {
    return { kind: 'invalid', reason: 'not JSON' };
  }
  if (typeof v !== 'object' || v === null) return { kind: 'invalid', reason: 'not a JSON object' };
  if (v.format !== ANCHOR_FORMAT) return { kind: 'invalid', reason: `format is not ${ANCHOR_FORMAT}` };
  if (
    !positive(v.boot) ||
    !positive(v.seq) ||
    typeof v.hash !== 'string' ||
    !HEX64.test(v.hash) ||
    typeof v.time !== 'string' ||
    typeof v.keyId !== 'string' ||
    typeof v.sig !== 'string'
  ) {
    return { kind: 'invalid', reason: 'missing or invalid boot, seq, hash, time, keyId or sig' };
  }
  return { kind: 'anchor', anchor: v as AuditAnchor };
}

/** Undefined when the anchor is signed by one of `keys`; otherwise why not. */
export function anchorSignatureProblem(a: AuditAnchor, keys: readonly AuditVerifyKey[]): string | undefined {
  const key = keys.find((k) => k.keyId === a.keyId);
  if (key === undefined) return `signed by unknown key ${a.keyId}`;
  const { sig, ...unsigned } = a;
  try {
    if (key.verify(anchorSigningInput(unsigned), Buffer.from(sig, 'base64url'))) return undefined;
  } catch {
    // a malformed signature is a bad one
  }
  return 'bad signature';
}
