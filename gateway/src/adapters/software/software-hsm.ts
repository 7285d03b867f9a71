import { open, readFile, rename } from 'node:fs/promises';
import { aes256GcmDecrypt, aes256GcmEncrypt, type Random, zeroize } from '@keygate/shared/crypto';
import { KeygateError } from '@keygate/shared/errors';
import type { Logger } from '@keygate/shared/log';
import {
  type GcmSealed,
  type Hsm,
  type HsmStatus,
  type KeyObjectRef,
  objectLabel,
} from '../../core/keys/hsm.js';
import { withFileLock } from '../store/file-lock.js';

interface SealedKey {
  readonly iv: string;
  readonly ct: string;
  readonly tag: string;
}

const WARNING = 'software key backend: DEVELOPMENT ONLY, root keys are not in an HSM';

/**
 * The development-only Hsm: AES-256 keys sealed (AES-256-GCM, label as AAD) under a master key
 * and kept in a JSON file shared by the processes of one host. It says so loudly at start and in
 * every /readyz answer.
 */
export class SoftwareHsm implements Hsm {
  /** IVs from the host's CSPRNG. */
  readonly ivBytes = 12;
  #keys = new Map<string, Buffer>();

  constructor(
    private readonly keyFile: string,
    private readonly masterKey: Buffer,
    private readonly random: Random,
    logger: Logger,
  ) {
    if (masterKey.length !== 32) throw new RangeError('the software backend master key must be 32 bytes');
    logger.warn({ keyFile }, `${WARNING}; never use it in production`);
  }

  async generateKey(ref: KeyObjectRef): Promise<void> {
    const label = objectLabel(ref);
    const key = this.random(32);
    await this.mutate((all) => {
      const iv = this.random(12);
      const s = aes256GcmEncrypt(this.masterKey, iv, key, Buffer.from(label));
      all[label] = {
        iv: iv.toString('base64'),
        ct: s.ciphertext.toString('base64'),
        tag: s.tag.toString('base64'),
      };
    });
    this.#keys.set(label, key);
  }

  async encrypt(ref: KeyObjectRef, plaintext: Uint8Array, aad: Uint8Array): Promise<GcmSealed> {
    const iv = this.random(12);
    return { iv, ...aes256GcmEncrypt(await this.key(ref), iv, plaintext, aad) };
  }

  async decrypt(ref: KeyObjectRef, sealed: GcmSealed, aad: Uint8Array): Promise<Buffer> {
    return aes256GcmDecrypt(await this.key(ref), sealed.iv, sealed.ciphertext, aad, sealed.tag);
  }

  /** Nothing to recover: every miss reads the key file again, so a restored entry is used at once. */
  reportMissing(_ref: KeyObjectRef): void {}

  async destroyKey(ref: KeyObjectRef): Promise<void> {
    const label = objectLabel(ref);
    await this.mutate((all) => {
      delete all[label];
    });
    zeroize(this.#keys.get(label));
    this.#keys.delete(label);
  }

  status(): HsmStatus {
    return { backend: 'software', ready: true, reasons: [WARNING] };
  }

  async close(): Promise<void> {
    for (const k of this.#keys.values()) zeroize(k);
    this.#keys.clear();
  }

  private async key(ref: KeyObjectRef): Promise<Buffer> {
    const label = objectLabel(ref);
    const cached = this.#keys.get(label);
    if (cached) return cached;
    const sealed = (await this.readAll())[label];
    if (!sealed) throw new KeygateError('HSM_KEY_OBJECT_MISSING', { detail: { label } });
    const key = aes256GcmDecrypt(
      this.masterKey,
      Buffer.from(sealed.iv, 'base64'),
      Buffer.from(sealed.ct, 'base64'),
      Buffer.from(label),
      Buffer.from(sealed.tag, 'base64'),
    );
    this.#keys.set(label, key);
    return key;
  }

  private async readAll(): Promise<Record<string, SealedKey>> {
    try {
      return JSON.parse(await readFile(this.keyFile, 'utf8')) as Record<string, SealedKey>;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw new KeygateError('HSM_UNAVAILABLE', { cause: err, detail: { keyFile: this.keyFile } });
    }
  }

  private async mutate(change: (all: Record<string, SealedKey>) => void): Promise<void> {
    await withFileLock(`${this.keyFile}.lock`, async () => {
      const all = await this.readAll();
      change(all);
      const tmp = `${this.keyFile}.${process.pid}.tmp`;
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(JSON.stringify(all));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.keyFile);
    });
  }
}
