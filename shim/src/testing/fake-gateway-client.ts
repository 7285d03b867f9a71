import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { KeygateError } from '@keygate/shared';
import type { GatewayClient, UnwrapResult, WrapResult } from '../core/ports.js';

/**
 * TEST FAKE of the GatewayClient port: wraps DEKs with AES-256-GCM in memory, one key per
 * version, binding the aad. Switches simulate an outage, latency and errors; counters count calls.
 */
export class FakeGatewayClient implements GatewayClient {
  readonly #keys = new Map<string, Buffer>();
  #version = 'v1';
  #versionSeq = 1;
  down = false;
  delayMs = 0;
  failWith: KeygateError | undefined;
  wrapCalls = 0;
  unwrapCalls = 0;

  constructor() {
    this.#keys.set(this.#version, randomBytes(32));
  }

  get currentVersion(): string {
    return this.#version;
  }

  /** Adds a new root key version and makes it current. */
  rotate(): string {
    this.#versionSeq++;
    this.#version = `v${this.#versionSeq}`;
    this.#keys.set(this.#version, randomBytes(32));
    return this.#version;
  }

  async wrap(dek: Uint8Array, aad: readonly string[]): Promise<WrapResult> {
    this.wrapCalls++;
    await this.#gate();
    const key = this.#keys.get(this.#version) as Buffer;
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    c.setAAD(Buffer.from(`${this.#version}|${aad.join('|')}`));
    const ct = Buffer.concat([c.update(dek), c.final()]);
    const v = Buffer.from(this.#version);
    const wrappedDek = Buffer.concat([Buffer.from([v.length]), v, iv, ct, c.getAuthTag()]);
    return { wrappedDek, keyVersionId: this.#version };
  }

  async unwrap(wrappedDek: Uint8Array, aad: readonly string[]): Promise<UnwrapResult> {
    this.unwrapCalls++;
    await this.#gate();
    const buf = Buffer.from(wrappedDek);
    const vLen = buf[0] ?? 0;
    const version = buf.subarray(1, 1 + vLen).toString();
    const key = this.#keys.get(version);
    if (!key || buf.length < 1 + vLen + 12 + 16 + 1) throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR');
    const iv = buf.subarray(1 + vLen, 13 + vLen);
    const tag = buf.subarray(buf.length - 16);
    const d = createDecipheriv('aes-256-gcm', key, iv);
    d.setAAD(Buffer.from(`${version}|${aad.join('|')}`));
    d.setAuthTag(tag);
    try {
      const dek = Buffer.concat([d.update(buf.subarray(13 + vLen, buf.length - 16)), d.final()]);
      return { dek, keyVersionId: version };
    } catch (cause) {
      throw new KeygateError('UNPROCESSABLE_CIPHERTEXT_ERR', { cause });
    }
  }

  /** Holds nothing to release. */
  async close(): Promise<void> {}

  async #gate(): Promise<void> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.down) throw new KeygateError('GATEWAY_UNAVAILABLE', { detail: { fake: 'down' } });
    if (this.failWith) throw this.failWith;
  }
}
