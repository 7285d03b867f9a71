import { X509Certificate } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, mkdir, open, readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createCa, describeCert, type IssuedCert, issueLeaf } from './issue.js';

/** File names `keygate-gateway pki` writes into an --out folder. */
export const PKI_FILES = {
  caCert: 'ca.pem',
  caKey: 'ca-key.pem',
  serverCert: 'server.pem',
  serverKey: 'server-key.pem',
  clientCert: 'client.pem',
  clientKey: 'client-key.pem',
} as const;

export const PKI_USAGE = `usage:
  keygate-gateway pki ca     --out DIR [--cn NAME] [--days N]                 (default 3650 days)
  keygate-gateway pki server --ca DIR --out DIR --dns a,b [--ip x,y] [--cn NAME] [--days N]
  keygate-gateway pki client --ca DIR --out DIR --cluster NAME [--days N]   (SAN spiffe://keygate/cluster/NAME)
  keygate-gateway pki show   FILE...                                        (subject, SANs, expiry, days left)
Private keys are written with mode 0600; existing files are never overwritten.`;

/**
 * A cluster name is a SPIFFE path segment (`spiffe://keygate/cluster/NAME`), not an instance id:
 * SPIFFE allows only letters, digits and `._-` there, so no `:` (INSTANCE_ID_PATTERN allows it).
 */
const CLUSTER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const DNS_NAME =
  /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const DAY_MS = 86_400_000;

class UsageError extends Error {}

/**
 * `keygate-gateway pki ...`: a small offline CA for the gateway's mutual TLS. Writes PEM files
 * (ECDSA P-256, PKCS#8 keys) and prints what it did through `out`. Returns the exit code:
 * 0 done, 1 failed (a file exists, a file cannot be read or written), 2 usage.
 */
export async function runPkiCommand(args: string[], out: (line: string) => void): Promise<number> {
  const argv = args[0] === 'pki' ? args.slice(1) : args;
  try {
    const { values, positionals } = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        out: { type: 'string' },
        ca: { type: 'string' },
        cn: { type: 'string' },
        days: { type: 'string' },
        dns: { type: 'string', multiple: true },
        ip: { type: 'string', multiple: true },
        cluster: { type: 'string' },
        now: { type: 'string' }, // tests: issue as of this ISO time
        help: { type: 'boolean', short: 'h' },
      },
    });
    const [sub, ...rest] = positionals;
    if (values.help) {
      out(PKI_USAGE);
      return 0;
    }
    const now = values.now === undefined ? new Date() : parseNow(values.now);
    switch (sub) {
      case 'ca': {
        noExtra(rest);
        const outDir = required(values.out, '--out DIR');
        const days = parseDays(values.days, 3650);
        const ca = await createCa(values.cn ?? 'keygate CA', { days, now });
        await writePair(outDir, PKI_FILES.caCert, ca.certPem, PKI_FILES.caKey, ca.keyPem);
        out(
          `CA written: ${join(outDir, PKI_FILES.caCert)} (key ${join(outDir, PKI_FILES.caKey)}, mode 0600)`,
        );
        for (const l of summary(ca.certPem, now)) out(l);
        out(
          'Keep ca-key.pem offline; give ca.pem to the gateway (clientCaFile) and to the shims (KP_CA_FILE).',
        );
        return 0;
      }
      case 'server': {
        noExtra(rest);
        const ca = await readCa(required(values.ca, '--ca DIR'));
        const outDir = required(values.out, '--out DIR');
        const dns = list(values.dns);
        const ips = list(values.ip);
        if (dns.length + ips.length === 0) throw new UsageError('--dns a,b and/or --ip x,y are required');
        for (const d of dns) if (!DNS_NAME.test(d)) throw new UsageError(`--dns: ${d} is not a DNS name`);
        for (const ip of ips) if (isIP(ip) === 0) throw new UsageError(`--ip: ${ip} is not an IP address`);
        const cert = await issueLeaf(ca, {
          commonName: values.cn ?? dns[0] ?? 'keygate-gateway',
          usage: 'server',
          dnsNames: dns,
          ipAddresses: ips,
          days: parseDays(values.days, 365),
          now,
        });
        await writeLeaf(outDir, ca, PKI_FILES.serverCert, cert, PKI_FILES.serverKey, now, out);
        out('Gateway config: server.tls.certFile = server.pem, keyFile = server-key.pem.');
        return 0;
      }
      case 'client': {
        noExtra(rest);
        const ca = await readCa(required(values.ca, '--ca DIR'));
        const outDir = required(values.out, '--out DIR');
        const cluster = required(values.cluster, '--cluster NAME');
        if (!CLUSTER.test(cluster))
          throw new UsageError('--cluster: expected A-Za-z0-9._- (1..128 characters)');
        const identity = `spiffe://keygate/cluster/${cluster}`;
        const cert = await issueLeaf(ca, {
          commonName: values.cn ?? cluster,
          usage: 'client',
          uris: [identity],
          days: parseDays(values.days, 365),
          now,
        });
        await writeLeaf(outDir, ca, PKI_FILES.clientCert, cert, PKI_FILES.clientKey, now, out);
        out(
          `Identity ${identity}: shim config KEYGATE.CLIENT_CERT_FILE = client.pem, CLIENT_KEY_FILE = client-key.pem.`,
        );
        return 0;
      }
      case 'show': {
        if (rest.length === 0) throw new UsageError('pki show FILE...');
        let code = 0;
        for (const file of rest) {
          let text: string;
          try {
            text = await readFile(file, 'utf8');
          } catch (err) {
            out(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
            code = 1;
            continue;
          }
          const pems = splitPem(text);
          if (pems.length === 0) {
            out(`${file}: no certificate`);
            code = 1;
            continue;
          }
          for (const [i, pem] of pems.entries()) {
            out(pems.length > 1 ? `${file} [${i + 1}/${pems.length}]:` : `${file}:`);
            for (const l of summary(pem, now)) out(l);
          }
        }
        return code;
      }
      default:
        throw new UsageError(sub === undefined ? 'a subcommand is required' : `unknown subcommand ${sub}`);
    }
  } catch (err) {
    if (err instanceof UsageError || (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      out(`pki: ${(err as Error).message}`);
      out(PKI_USAGE);
      return 2;
    }
    out(`pki: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

function required(value: string | undefined, what: string): string {
  if (value === undefined || value === '') throw new UsageError(`${what} is required`);
  return value;
}

function noExtra(rest: readonly string[]): void {
  if (rest.length > 0) throw new UsageError(`unexpected argument ${rest[0]}`);
}

function list(values: readonly string[] | undefined): string[] {
  return (values ?? [])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

function parseDays(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 36_500)
    throw new UsageError('--days must be a whole number 1..36500');
  return n;
}

function parseNow(value: string): Date {
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) throw new UsageError('--now must be an ISO date');
  return d;
}

/** The CA in `dir` (ca.pem + ca-key.pem, as `pki ca --out DIR` wrote them); `clusters add` issues from it too. */
export async function readCa(dir: string): Promise<IssuedCert> {
  const certPem = await readFile(join(dir, PKI_FILES.caCert), 'utf8');
  const keyPem = await readFile(join(dir, PKI_FILES.caKey), 'utf8');
  const first = splitPem(certPem)[0];
  if (first === undefined) throw new Error(`${join(dir, PKI_FILES.caCert)}: no certificate`);
  const x = new X509Certificate(first);
  if (!x.ca) throw new Error(`${join(dir, PKI_FILES.caCert)}: not a CA certificate`);
  return { certPem: first, keyPem, notAfter: new Date(x.validTo) };
}

/** Writes a certificate (0644) and its key (0600), refusing when either file exists. */
async function writePair(dir: string, certName: string, certPem: string, keyName: string, keyPem: string) {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const certFile = join(dir, certName);
  const keyFile = join(dir, keyName);
  await assertAbsent(certFile);
  await assertAbsent(keyFile);
  await writeNew(keyFile, keyPem, 0o600);
  await writeNew(certFile, certPem, 0o644);
}

/** A leaf pair plus ca.pem (the issuing CA) when the folder has none yet. */
async function writeLeaf(
  dir: string,
  ca: IssuedCert,
  certName: string,
  cert: IssuedCert,
  keyName: string,
  now: Date,
  out: (line: string) => void,
): Promise<void> {
  await writePair(dir, certName, cert.certPem, keyName, cert.keyPem);
  const caFile = join(dir, PKI_FILES.caCert);
  let existing: string | undefined;
  try {
    existing = await readFile(caFile, 'utf8');
  } catch {
    existing = undefined;
  }
  if (existing === undefined) await writeNew(caFile, ca.certPem, 0o644);
  else if (!splitPem(existing).some((p) => samePem(p, ca.certPem)))
    out(`note: ${caFile} exists and does not contain the issuing CA; add it to that bundle.`);
  out(`written: ${join(dir, certName)} (key ${join(dir, keyName)}, mode 0600), CA in ${caFile}`);
  for (const l of summary(cert.certPem, now)) out(l);
}

async function assertAbsent(file: string): Promise<void> {
  try {
    await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  throw new Error(`${file} exists; refusing to overwrite it (move it away first)`);
}

async function writeNew(file: string, text: string, mode: number): Promise<void> {
  // O_EXCL: never replace a file that appeared meanwhile; chmod because the umask may narrow `mode`.
  const fh = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await fh.writeFile(text.endsWith('\n') ? text : `${text}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(file, mode);
}

function splitPem(text: string): string[] {
  return (text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map(
    (p) => `${p}\n`,
  );
}

function samePem(a: string, b: string): boolean {
  const norm = (p: string) => p.replace(/\s+/g, '');
  return norm(a) === norm(b);
}

/** Subject, issuer, SANs, validity and days left of one PEM certificate, indented. */
function summary(pem: string, now: Date): string[] {
  const d = describeCert(pem);
  const x = new X509Certificate(pem);
  const sans = (x.subjectAltName ?? '').split(', ').filter((s) => s !== '');
  const daysLeft = Math.floor((d.notAfter.getTime() - now.getTime()) / DAY_MS);
  const state = daysLeft < 0 ? `EXPIRED ${-daysLeft} days ago` : `${daysLeft} days left`;
  return [
    `  subject:   ${d.subject}`,
    `  issuer:    ${d.issuer}`,
    `  ca:        ${x.ca ? 'yes' : 'no'}`,
    `  san uris:  ${d.uris.length > 0 ? d.uris.join(', ') : '-'}`,
    `  san other: ${sans.filter((s) => !s.startsWith('URI:')).join(', ') || '-'}`,
    `  notBefore: ${new Date(x.validFrom).toISOString()}`,
    `  notAfter:  ${d.notAfter.toISOString()} (${state})`,
    `  sha256:    ${x.fingerprint256}`,
  ];
}
