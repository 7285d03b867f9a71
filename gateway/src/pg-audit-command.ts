import { readFile } from 'node:fs/promises';
import { createLogger } from '@keygate/shared/log';
import { auditVerifyKey } from './adapters/audit/key-file-signer.js';
import {
  ExportFolderNotEmpty,
  exportPostgresAudit,
  verifyPostgresAudit,
} from './adapters/audit/pg-audit-export.js';
import { describeReport } from './audit-report.js';
import { loadGatewayConfig } from './config.js';
import type { ExpectedHead } from './core/audit/chain-verifier.js';
import { auditDatabase } from './pg-audit-runtime.js';

type Print = (line: string) => void;

/** `--from SEQ`: a seq from 1 on, or undefined when not given; NaN when invalid. */
function fromSeq(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  return /^\d+$/.test(text) && Number.isSafeInteger(n) && n >= 1 ? n : Number.NaN;
}

/**
 * `audit verify --postgres --config FILE --key PUB.pem`: the chain in the config's database
 * (store.postgres), checked like a file log, plus the hash column and the head row.
 */
export async function pgAuditVerify(
  configFile: string,
  v: {
    key?: string[] | undefined;
    sealed?: boolean | undefined;
    from?: string | undefined;
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
  if (v.anchor !== undefined) {
    err('--anchor is for the file log: the PostgreSQL chain is checked against its head row');
    return 2;
  }
  const from = fromSeq(v.from);
  if (Number.isNaN(from)) {
    err('--from must be a record seq (1 or more)');
    return 2;
  }
  let expect: ExpectedHead | undefined;
  const seqText = v['expect-seq'];
  const head = v['expect-head'];
  if (seqText !== undefined || head !== undefined) {
    const seq = Number(seqText);
    if (!Number.isSafeInteger(seq) || seq < 1 || head === undefined || !/^[0-9a-f]{64}$/.test(head)) {
      err('--expect-seq N and --expect-head HASH go together: a record seq and its 64-hex line hash');
      return 2;
    }
    expect = { seq, hash: head, source: 'the expected head' };
  }
  const keys = [];
  for (const f of keyFiles) keys.push(auditVerifyKey(await readFile(f, 'utf8')));
  const config = loadGatewayConfig(configFile);
  const db = auditDatabase(config, configFile, quietLogger());
  try {
    const r = await verifyPostgresAudit(db, keys, { requireSealed: v.sealed ?? false, from, expect });
    for (const line of describeReport(r)) out(line);
    return r.ok ? 0 : 1;
  } finally {
    await db.close();
  }
}

/** `audit export --config FILE --out DIR [--from SEQ]`: the chain as audit files `audit verify DIR` checks. */
export async function pgAuditExport(
  configFile: string,
  dir: string,
  fromText: string | undefined,
  out: Print,
  err: Print,
): Promise<number> {
  const from = fromSeq(fromText);
  if (Number.isNaN(from)) {
    err('--from must be a record seq (1 or more)');
    return 2;
  }
  const config = loadGatewayConfig(configFile);
  const db = auditDatabase(config, configFile, quietLogger());
  try {
    let r: Awaited<ReturnType<typeof exportPostgresAudit>>;
    try {
      r = await exportPostgresAudit(db, dir, from === undefined ? {} : { from });
    } catch (e) {
      if (!(e instanceof ExportFolderNotEmpty)) throw e;
      err(e.message);
      return 2;
    }
    if (r.records === 0) {
      out(`nothing to export: no audit records${from === undefined ? '' : ` from seq ${from}`}`);
      return 1;
    }
    out(
      `exported ${r.records} records (seq ${r.firstSeq}..${r.lastSeq}) to ${dir} in ${r.files.length} files`,
    );
    const pruned = r.firstSeq > 1 ? ' --pruned' : '';
    out(`check them with: keygate-gateway audit verify ${dir} --key PUBKEY.pem${pruned}`);
    return 0;
  } finally {
    await db.close();
  }
}

/** Database problems go to stderr as log lines only at warn and above. */
function quietLogger() {
  return createLogger({ level: 'warn', name: 'keygate-gateway', destination: process.stderr });
}
