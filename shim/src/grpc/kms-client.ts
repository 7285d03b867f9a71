import { type Client, credentials, makeClientConstructor, type ServiceError } from '@grpc/grpc-js';
import type { BytesMap } from './codec/message.js';
import { V1BETA1_SERVICE, V2_SERVICE } from './services.js';

const V2Client = makeClientConstructor(V2_SERVICE, 'v2.KeyManagementService');
const V1Client = makeClientConstructor(V1BETA1_SERVICE, 'v1beta1.KeyManagementService');

type Unary = (
  req: object,
  opts: { deadline: Date },
  cb: (err: ServiceError | null, res: unknown) => void,
) => void;

/**
 * A small KMS client over the UNIX socket, shaped like kube-apiserver's (authority "localhost",
 * wait for ready, a deadline per call). Used by the CLI's encrypt/decrypt and by tests.
 */
export class KmsClient {
  readonly #v2: Client;
  readonly #v1: Client;
  readonly #timeoutMs: number;

  constructor(socketPath: string, timeoutMs = 3000) {
    const target = socketPath.startsWith('@')
      ? `unix-abstract:${socketPath.slice(1)}`
      : `unix://${socketPath}`;
    const opts = { 'grpc.default_authority': 'localhost' };
    this.#v2 = new V2Client(target, credentials.createInsecure(), opts);
    this.#v1 = new V1Client(target, credentials.createInsecure(), opts);
    this.#timeoutMs = timeoutMs;
  }

  status(): Promise<{ version: string; healthz: string; key_id: string }> {
    return this.#call(this.#v2, 'Status', {});
  }

  encrypt(
    plaintext: Uint8Array,
    uid = 'cli',
  ): Promise<{ ciphertext: Buffer; key_id: string; annotations: BytesMap }> {
    return this.#call(this.#v2, 'Encrypt', { plaintext, uid });
  }

  decrypt(ciphertext: Uint8Array, keyId: string, uid = 'cli'): Promise<{ plaintext: Buffer }> {
    return this.#call(this.#v2, 'Decrypt', { ciphertext, key_id: keyId, uid, annotations: {} });
  }

  v1Version(
    version = 'v1beta1',
  ): Promise<{ version: string; runtime_name: string; runtime_version: string }> {
    return this.#call(this.#v1, 'Version', { version });
  }

  v1Encrypt(plain: Uint8Array, version = 'v1beta1'): Promise<{ cipher: Buffer }> {
    return this.#call(this.#v1, 'Encrypt', { version, plain });
  }

  v1Decrypt(cipher: Uint8Array, version = 'v1beta1'): Promise<{ plain: Buffer }> {
    return this.#call(this.#v1, 'Decrypt', { version, cipher });
  }

  close(): void {
    this.#v2.close();
    this.#v1.close();
  }

  #call<T>(client: Client, method: string, req: object): Promise<T> {
    const fn = (client as unknown as Record<string, Unary>)[method];
    if (!fn) return Promise.reject(new Error(`no method ${method}`));
    return new Promise((resolve, reject) => {
      fn.call(client, req, { deadline: new Date(Date.now() + this.#timeoutMs) }, (err, res) =>
        err ? reject(err) : resolve(res as T),
      );
    });
  }
}
