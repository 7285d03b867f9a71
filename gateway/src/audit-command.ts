import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { KeygateError } from '@keygate/shared/errors';
import { FileAuditAnchorStore } from './adapters/audit/anchor-file.js';
import { auditVerifyKey, createAuditKeyFile } from './adapters/audit/key-file-signer.js';
import { tailAudit } from './adapters/audit/tail.js';
import { verifyAuditCopy, verifyAuditDir } from './adapters/audit/verify-dir.js';
import { describeReport } from './audit-report.js';
import { acknowledgeAuditLoss } from './audit-runtime.js';
import { pgAuditExport, pgAuditVerify } from './pg-audit-command.js';

export { describeReport } from './audit-report.js';

import { loadGatewayConfig } from './config.js';
import type { AuditAnchor } from './core/audit/audit-anchor.js';
import type { ExpectedHead } from './core/audit/chain-verifier.js';

export const AUDIT_USAGE = `  keygate-gateway audit keygen FILE
  keygate-gateway audit verify DIR|COPY.jsonl --key PUBKEY.pem [--key OLD.pem ...] [--sealed] [--pruned]
                               [--expect-seq N --expect-head HASH | --anchor FILE]
  keygate-gateway audit verify --postgres --config FILE --key PUBKEY.pem [--key OLD.pem ...] [--sealed]
                               [--from SEQ] [--expect-seq N --expect-head HASH]
  keygate-gateway audit export --config FILE --out DIR [--from SEQ]
  keygate-gateway audit tail DIR [-n N]
  keygate-gateway audit acknowledge-loss --config FILE [--reason TEXT]`;

type Print = (line: string) => void;

/** `keygate-gateway audit …`: returns the exit code (2 for usage). */
export async function runAuditCommand(argv: readonly string[], out: Print, err: Print): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      key: { type: 'string', multiple: true },
      sealed: { type: 'boolean' },
      pruned: { type: 'boolean' },
      'expect-seq': { type: 'string' },
      'expect-head': { type: 'string' },
      anchor: { type: 'string' },
      reason: { type: 'string' },
      lines: { type: 'string', short: 'n' },
      postgres: { type: 'boolean' },
      out: { type: 'string' },
      from: { type: 'string' },
    },
  });
  const [sub, arg] = positionals;
  if (sub === 'keygen' && arg !== undefined) {
    const { keyId, publicKeyPem } = await createAuditKeyFile(arg);
    err(`audit signing key written to ${arg} (${keyId}); set audit.signingKeyFile to it.`);
    err('Public key for `audit verify --key` (save it where the auditors are):');
    out(publicKeyPem.trimEnd());
    return 0;
  }
  if (sub === 'verify' && values.postgres === true) {
    if (arg !== undefined || values.config === undefined) {
      err('audit verify --postgres takes --config FILE (its store.postgres), not a folder');
      return 2;
    }
    return pgAuditVerify(values.config, values, out, err);
  }
  if (sub === 'export' && values.config !== undefined && values.out !== undefined) {
    return pgAuditExport(values.config, values.out, values.from, out, err);
  }
  if (sub === 'verify' && arg !== undefined) return auditVerify(arg, values, out, err);
  if (sub === 'tail' && arg !== undefined) {
    const n = values.lines === undefined ? 20 : Number(values.lines);
    if (!Number.isInteger(n) || n < 1) {
      err('-n must be a positive whole number');
      return 2;
    }
    for (const line of await tailAudit(arg, n)) out(line);
    return 0;
  }
  if (sub === 'acknowledge-loss' && values.config !== undefined) {
    return acknowledgeLoss(values.config, values.reason ?? '', out);
  }
  err(`usage:\n${AUDIT_USAGE}`);
  return 2;
}

async function auditVerify(
  path: string,
  v: {
    key?: string[] | undefined;
    sealed?: boolean | undefined;
    pruned?: boolean | undefined;
    'expect-seq'?: string | undefined;
    'expect-head'?: string | undefined;
    anchor?: string | undefined;
  },
  out: Print,
  err: Print,
): Promise<number> {
  const keyFiles = v.key ?? [];
  if (keyFiles.length === 0) {
    err('--key PUBKEY.pem is required (the audit public key; repeat for older keys)');
    return 2;
  }
  const seqText = v['expect-seq'];
  const head = v['expect-head'];
  let expect: ExpectedHead | undefined;
  if (seqText !== undefined || head !== undefined) {
    const seq = Number(seqText);
    if (!Number.isSafeInteger(seq) || seq < 1 || head === undefined || !/^[0-9a-f]{64}$/.test(head)) {
      err('--expect-seq N and --expect-head HASH go together: a record seq and its 64-hex line hash');
      return 2;
    }
    if (v.anchor !== undefined) {
      err('use --expect-seq/--expect-head or --anchor, not both');
      return 2;
    }
    expect = { seq, hash: head, source: 'the expected head' };
  }
  let anchor: AuditAnchor | undefined;
  if (v.anchor !== undefined) {
    const reading = await new FileAuditAnchorStore(v.anchor).read();
    if (reading.kind !== 'anchor') {
      out(
        `FAILED: bad-anchor: ${v.anchor} ${reading.kind === 'none' ? 'does not exist' : `is not an anchor (${reading.reason})`}`,
      );
      return 1;
    }
    anchor = reading.anchor;
  }
  const keys = [];
  for (const f of keyFiles) keys.push(auditVerifyKey(await readFile(f, 'utf8')));
  const opts = { requireSealed: v.sealed ?? false, allowPrunedStart: v.pruned ?? false, expect, anchor };
  const isFile = await stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
  const r = await (isFile ? verifyAuditCopy : verifyAuditDir)(path, keys, opts);
  for (const line of describeReport(r)) out(line);
  return r.ok ? 0 : 1;
}

async function acknowledgeLoss(configFile: string, reason: string, out: Print): Promise<number> {
  const config = loadGatewayConfig(configFile);
  const r = await acknowledgeAuditLoss(config, configFile, reason);
  const dir = config.audit?.target === 'file' ? config.audit.dir : undefined;
  if (!r.acknowledged) {
    out(
      `nothing to acknowledge: the audit log in ${dir} matches its anchor (last seq ${r.lastSeq}); nothing written`,
    );
    return 0;
  }
  const l = r.loss;
  const anchor =
    l.anchorSeq === undefined
      ? 'no valid anchor'
      : `the anchor said seq ${l.anchorSeq} (boot ${l.anchorBoot})`;
  out(`loss acknowledged in ${dir}: ${l.problem}: ${anchor}, found seq ${l.foundSeq}`);
  out(
    `loss record seq ${l.seq}, start boot ${r.boot}, sealed at seq ${r.lastSeq}; anchor ${config.audit?.target === 'file' ? config.audit.anchorFile : ''} rewritten`,
  );
  out('`keygate-gateway serve` starts again; `audit verify` reports the loss.');
  return 0;
}

/** The operator's message when `serve` refuses to start over AUDIT_ANCHOR_MISMATCH. */
export function describeAuditRefusal(e: KeygateError, configFile: string): string {
  const d = e.detail ?? {};
  const anchorSays =
    d.anchorSeq === undefined
      ? 'no valid anchor'
      : `says the log reached seq ${d.anchorSeq} (boot ${d.anchorBoot})`;
  const boot = d.foundBoot === undefined ? '' : ` (last start: boot ${d.foundBoot})`;
  return [
    `keygate-gateway: AUDIT_ANCHOR_MISMATCH: the audit log does not match its anchor (${d.problem}); the gateway refuses to start.`,
    `  audit folder: ${d.dir}`,
    `  anchor:       ${d.anchor}: ${anchorSays}`,
    `  found:        last seq ${d.foundSeq}${boot}`,
    `  why:          ${d.reason}`,
    'Find out what happened first (docs/audit.md, "The anchor"): put the missing files back from a backup',
    'if you can. To accept the loss and start again, with the gateway stopped:',
    `  keygate-gateway audit acknowledge-loss --config ${configFile} --reason "what happened"`,
  ].join('\n');
}
