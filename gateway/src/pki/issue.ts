import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as never);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** A certificate and its private key, both PEM. The key is PKCS#8. */
export interface IssuedCert {
  readonly certPem: string;
  readonly keyPem: string;
  readonly notAfter: Date;
}

/** Options shared by every issued certificate. */
export interface IssueOptions {
  /** Validity in days from now (default 365; CA default 3650). */
  readonly days?: number;
  /** Clock for notBefore / notAfter (tests). */
  readonly now?: Date;
}

/** Makes a self-signed ECDSA P-256 CA certificate. */
export async function createCa(commonName: string, opts: IssueOptions = {}): Promise<IssuedCert> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const { notBefore, notAfter } = validity(opts, 3650);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${escapeDn(commonName)}`,
    notBefore,
    notAfter,
    signingAlgorithm: ALG,
    keys: keys as never,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKey(keys.privateKey), notAfter };
}

/** What a leaf certificate is for, and the names it carries. */
export interface LeafSpec extends IssueOptions {
  readonly commonName: string;
  readonly usage: 'server' | 'client';
  /** DNS names (server certificates). */
  readonly dnsNames?: readonly string[];
  /** IP addresses (server certificates). */
  readonly ipAddresses?: readonly string[];
  /** URIs, e.g. spiffe://keygate/cluster/prod-eu-1 (client identity). */
  readonly uris?: readonly string[];
}

/** Issues a leaf certificate signed by `ca`. */
export async function issueLeaf(ca: IssuedCert, spec: LeafSpec): Promise<IssuedCert> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importKey(ca.keyPem);
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const { notBefore, notAfter } = validity(spec, 365);
  const names: x509.JsonGeneralName[] = [
    ...(spec.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(spec.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(spec.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension(
      [spec.usage === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth],
      false,
    ),
    await x509.AuthorityKeyIdentifierExtension.create(caCert, false),
  ];
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names, false));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${escapeDn(spec.commonName)}`,
    issuer: caCert.subject,
    notBefore,
    notAfter,
    signingAlgorithm: ALG,
    publicKey: keys.publicKey as never,
    signingKey: caKey as never,
    extensions,
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKey(keys.privateKey), notAfter };
}

/** Subject, SAN URIs and expiry of a PEM certificate, for `pki show`. */
export function describeCert(certPem: string): {
  subject: string;
  uris: string[];
  notAfter: Date;
  issuer: string;
} {
  const cert = new x509.X509Certificate(certPem);
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const uris = (san?.names.toJSON() ?? []).filter((n) => n.type === 'url').map((n) => n.value);
  return { subject: cert.subject, issuer: cert.issuer, uris, notAfter: cert.notAfter };
}

function validity(opts: IssueOptions, defaultDays: number): { notBefore: Date; notAfter: Date } {
  const now = opts.now ?? new Date();
  const notBefore = new Date(now.getTime() - 5 * 60_000); // tolerate small clock skew
  const notAfter = new Date(now.getTime() + (opts.days ?? defaultDays) * 86_400_000);
  return { notBefore, notAfter };
}

function serial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16));
  b[0] = (b[0] as number) & 0x7f; // positive
  return Buffer.from(b).toString('hex');
}

function escapeDn(value: string): string {
  return value.replace(/([,+"\\<>;=])/g, '\\$1');
}

async function exportKey(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN PRIVATE KEY-----\n${b64.trimEnd()}\n-----END PRIVATE KEY-----\n`;
}

async function importKey(pem: string): Promise<webcrypto.CryptoKey> {
  const b64 = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
  const key = await webcrypto.subtle.importKey('pkcs8', Buffer.from(b64, 'base64'), ALG, false, ['sign']);
  return key;
}
