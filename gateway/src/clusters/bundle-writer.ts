import { constants } from 'node:fs';
import { chmod, mkdir, open, readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ClusterRecord } from '../core/clusters/cluster.js';
import type { IssuedCert } from '../pki/issue.js';
import { BUNDLE_FILES, buildBundle } from './bundle.js';

/** Where and how `clusters add` writes a bundle. */
export interface BundleOptions {
  /** A folder that does not exist yet, or is empty. */
  readonly outDir: string;
  readonly gatewayUrls: readonly string[];
  readonly image?: string | undefined;
}

export interface WrittenBundle {
  readonly dir: string;
  readonly apiKeyFile: string;
  readonly readme: string;
}

/**
 * Writes a cluster's bundle into a fresh folder (0700; keys and the API key 0600, the rest 0644).
 * `register` creates the identity and returns its new API key; it runs only once the folder is
 * known to be usable, and `unregister` undoes it when a file cannot be written, so a failed add
 * leaves neither a half bundle nor an identity nobody holds the key of.
 */
export async function writeClusterBundle(
  o: BundleOptions,
  record: ClusterRecord,
  pems: { readonly caPem: string; readonly cert: IssuedCert },
  register: () => Promise<string>,
  unregister: () => Promise<void>,
): Promise<WrittenBundle> {
  const dir = resolve(o.outDir);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const present = await readdir(dir);
  if (present.length > 0)
    throw new Error(`${dir} is not empty; refusing to overwrite (pass --out with a new folder)`);
  await chmod(dir, 0o700);
  const apiKey = await register();
  const files = buildBundle({
    cluster: record.name,
    instance: record.instance,
    crk: record.crk,
    gatewayUrls: o.gatewayUrls,
    caPem: pems.caPem,
    certPem: pems.cert.certPem,
    keyPem: pems.cert.keyPem,
    apiKey,
    certNotAfter: pems.cert.notAfter,
    image: o.image,
    createdAt: record.createdAt,
  });
  try {
    for (const f of files) await writeNew(join(dir, f.name), f.text, f.mode);
  } catch (err) {
    await Promise.all(files.map((f) => rm(join(dir, f.name), { force: true })));
    await unregister();
    throw err;
  }
  return { dir, apiKeyFile: join(dir, BUNDLE_FILES.apiKey), readme: join(dir, BUNDLE_FILES.readme) };
}

async function writeNew(file: string, text: string, mode: number): Promise<void> {
  const fh = await open(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await chmod(file, mode); // the umask may have narrowed `mode`
}
