/** The kube-apiserver client the Kubernetes suite drives the API with. */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';

export interface KubeResponse {
  readonly status: number;
  readonly text: string;
}

/** Plain HTTPS to kube-apiserver with the admin bearer token, trusting only our CA. */
export class KubeClient {
  readonly #agent: Agent;
  readonly #base: URL;
  readonly #token: string;

  constructor(base: string, caFile: string, token: string) {
    this.#base = new URL(base);
    this.#token = token;
    this.#agent = new Agent({ ca: readFileSync(caFile), keepAlive: true, maxSockets: 16 });
  }

  request(method: string, path: string, body?: unknown, timeoutMs = 30_000): Promise<KubeResponse> {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolveRes, reject) => {
      const req = request(
        {
          host: this.#base.hostname,
          port: this.#base.port,
          path,
          method,
          agent: this.#agent,
          headers: {
            authorization: `Bearer ${this.#token}`,
            accept: 'application/json',
            ...(data ? { 'content-type': 'application/json', 'content-length': String(data.length) } : {}),
          },
          timeout: timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolveRes({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  async json<T>(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    const r = await this.request(method, path, body, timeoutMs);
    if (r.status < 200 || r.status >= 300) throw new KubeError(method, path, r);
    return JSON.parse(r.text) as T;
  }

  close(): void {
    this.#agent.destroy();
  }
}

export class KubeError extends Error {
  readonly status: number;
  constructor(method: string, path: string, r: KubeResponse) {
    let message = r.text.slice(0, 300);
    try {
      message = (JSON.parse(r.text) as { message?: string }).message ?? message;
    } catch {
      // not JSON
    }
    super(`${method} ${path}: HTTP ${r.status}: ${message}`);
    this.status = r.status;
  }
}
