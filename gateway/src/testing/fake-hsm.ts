import { aes256GcmDecrypt, aes256GcmEncrypt, type Random } from '@keygate/shared/crypto';
import { KeygateError } from '@keygate/shared/errors';
import {
  type GcmSealed,
  type Hsm,
  type HsmStatus,
  type KeyObjectRef,
  objectLabel as label,
} from '../core/keys/hsm.js';

/** An in-memory Hsm for unit tests of the core. Keys are plain buffers; never use outside tests. */
export class FakeHsm implements Hsm {
  readonly keys = new Map<string, Buffer>();
  /** Every reportMissing call, in order (tests assert on it). */
  readonly reported: KeyObjectRef[] = [];
  /** Host IVs, as SoftHSM2. */
  readonly ivBytes = 12;
  constructor(private readonly random: Random) {}

  async generateKey(ref: KeyObjectRef): Promise<void> {
    this.keys.set(label(ref), this.random(32));
  }

  async encrypt(ref: KeyObjectRef, plaintext: Uint8Array, aad: Uint8Array): Promise<GcmSealed> {
    const iv = this.random(12);
    const sealed = aes256GcmEncrypt(this.key(ref), iv, plaintext, aad);
    return { iv, ...sealed };
  }

  async decrypt(ref: KeyObjectRef, sealed: GcmSealed, aad: Uint8Array): Promise<Buffer> {
    return aes256GcmDecrypt(this.key(ref), sealed.iv, sealed.ciphertext, aad, sealed.tag);
  }

  reportMissing(ref: KeyObjectRef): void {
    this.reported.push(ref);
  }

  async destroyKey(ref: KeyObjectRef): Promise<void> {
    this.keys.get(label(ref))?.fill(0);
    this.keys.delete(label(ref));
  }

  status(): HsmStatus {
    return { backend: 'software', ready: true, reasons: [] };
  }

  async close(): Promise<void> {}

  private key(ref: KeyObjectRef): Buffer {
    const k = this.keys.get(label(ref));
    if (k === undefined) throw new KeygateError('HSM_KEY_OBJECT_MISSING', { detail: { label: label(ref) } });
    return k;
  }
}
