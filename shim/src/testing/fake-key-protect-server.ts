import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import {
  APIKEY_GRANT_TYPE,
  decodeWrappedDek,
  ERROR_CATALOGUE,
  type ErrorCode,
  encodeWrapHeader,
  encodeWrappedDek,
  errorCollectionFor,
  HEADERS,
  wrapAad,
} from '@keygate/shared';
import type { TestPki } from './test-pki.js';

export interface FakeKeyProtectOptions {
  readonly pki: TestPki;
  readonly apiKey: string;
  readonly instanceId: string;
  readonly crkId: string;
  /** Lifetime of issued tokens in seconds (default 3600). */
  readonly tokenTtlSeconds?: number;
  /** Listen on this port (to come back on the same URL after stop()). */
  readonly port?: number;
}

/**
 * TEST FAKE of a Key Protect compatible gateway and IAM token endpoint, over real HTTPS with client
 * certificates required. Wraps with AES-256-GCM in memory, one key per root key version, in the
 * shared wrapped-DEK format. Switches simulate latency and errors; stop()/start() simulate a kill.
 * Never use outside tests.
 */
export class FakeKeyProtectServer {
  readonly #o: FakeKeyProtectOptions;
  readonly #versions = new Map<string, Buffer>();
  readonly #tokens = new Map<string, number>();
  #current = '';
  #seq = 0;
  #server: Server | undefined;
  #port = 0;
  /** Delay before every answer, in ms. */
  delayMs = 0;
  /** Answer every key action with this error code (its catalogue HTTP status). */
  failWith: ErrorCode | undefined;
  /** Answer every key action with this bare HTTP status (e.g. 503). */
  failStatus: number | undefined;
  /** Retry-After (seconds) sent with failWith / failStatus answers. */
  retryAfter: string | undefined;
  readonly counts = { token: 0, wrap: 0, unwrap: 0 };
  /** The x-keygate-timeout-ms header of every key action received, in order ('' when absent). */
  readonly timeoutHeaders: string[] = [];
  /** The shim report header of every wrap and unwrap ('' when absent). */
  readonly reportHeaders: string[] = [];

  private constructor(options: FakeKeyProtectOptions) {
    this.#o = options;
    this.rotate();
  }

  static async start(options: FakeKeyProtectOptions): Promise<FakeKeyProtectServer> {
    const s = new FakeKeyProtectServer(options);
    await s.listen(options.port ?? 0);
    return s;
  }

  get url(): string {
    return `https://127.0.0.1:${this.#port}`;
  }

  get tokenUrl(): string {
    return `${this.url}/identity/token`;
  }

  get currentVersion(): string {
    return this.#current;
  }

  /** Makes a new root key version current; older ones still unwrap. */
  rotate(): string {
    this.#seq++;
    this.#current = `ver-${this.#seq}-${randomBytes(4).toString('hex')}`;
    this.#versions.set(this.#current, randomBytes(32));
    return this.#current;
  }

  /** Forgets every issued token (as if they were revoked). */
  revokeTokens(): void {
    this.#tokens.clear();
  }

  /** Listens (again) on `port`, or a free port when 0. */
  async listen(port = this.#port): Promise<void> {
    const server = createServer(
      {
        key: this.#o.pki.serverKey,
        cert: this.#o.pki.serverCert,
        ca: this.#o.pki.ca,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (req, res) => {
        this.#handle(req, res).catch(() => {
          if (!res.headersSent) res.writeHead(500);
          res.end();
        });
      },
    );
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Stops listening and cuts every open connection, as a killed process would. */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const url = new URL(req.url ?? '/', 'https://x');
    if (req.method === 'POST' && url.pathname === '/identity/token') return this.#token(body, res);
    const m = /^\/api\/v2\/keys\/([^/]+)\/actions\/(wrap|unwrap)$/.exec(url.pathname);
    if (req.method !== 'POST' || !m) return send(res, 404, errorCollectionFor('NOT_FOUND_ERR'));
    const auth = String(req.headers[HEADERS.authorization] ?? '');
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    const exp = this.#tokens.get(token);
    if (exp === undefined || Date.now() >= exp) return fail(res, 'AUTH_TOKEN_INVALID');
    if (req.headers[HEADERS.instance] !== this.#o.instanceId) return fail(res, 'INSTANCE_HEADER_MISSING_ERR');
    if (decodeURIComponent(m[1] ?? '') !== this.#o.crkId) return fail(res, 'KEY_NOT_FOUND_ERR');
    const action = m[2] as 'wrap' | 'unwrap';
    this.counts[action]++;
    this.timeoutHeaders.push(String(req.headers[HEADERS.timeoutMs] ?? ''));
    this.reportHeaders.push(String(req.headers[HEADERS.shimReport] ?? ''));
    if (this.retryAfter !== undefined) res.setHeader(HEADERS.retryAfter, this.retryAfter);
    if (this.failStatus) return send(res, this.failStatus, { error: 'simulated' });
    if (this.failWith) return fail(res, this.failWith);
    let json: { plaintext?: string; ciphertext?: string; aad?: string[] };
    try {
      json = JSON.parse(body) as typeof json;
    } catch {
      return fail(res, 'BAD_BODY_ERR');
    }
    const aad = json.aad ?? [];
    if (action === 'wrap') {
      const dek = json.plaintext ? Buffer.from(json.plaintext, 'base64') : randomBytes(32);
      const header = encodeWrapHeader(this.#current);
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', this.#versions.get(this.#current) as Buffer, iv);
      c.setAAD(wrapAad(header, this.#o.instanceId, this.#o.crkId, aad));
      const ct = Buffer.concat([c.update(dek), c.final()]);
      const blob = encodeWrappedDek(header, iv, ct, c.getAuthTag());
      const out: Record<string, unknown> = {
        ciphertext: blob.toString('base64'),
        keyVersion: { id: this.#current },
      };
      if (!json.plaintext) out.plaintext = dek.toString('base64');
      return send(res, 200, out);
    }
    try {
      const w = decodeWrappedDek(Buffer.from(json.ciphertext ?? '', 'base64'));
      const key = this.#versions.get(w.keyVersionId);
      if (!key) return fail(res, 'UNPROCESSABLE_CIPHERTEXT_ERR');
      const d = createDecipheriv('aes-256-gcm', key, w.iv);
      d.setAAD(wrapAad(w.header, this.#o.instanceId, this.#o.crkId, aad));
      d.setAuthTag(w.tag);
      const dek = Buffer.concat([d.update(w.ciphertext), d.final()]);
      return send(res, 200, { plaintext: dek.toString('base64'), keyVersion: { id: w.keyVersionId } });
    } catch {
      return fail(res, 'UNPROCESSABLE_CIPHERTEXT_ERR');
    }
  }

  #token(body: string, res: ServerResponse): void {
    this.counts.token++;
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== APIKEY_GRANT_TYPE || form.get('apikey') !== this.#o.apiKey) {
      send(res, 400, { errorCode: 'BXNIM0415E', errorMessage: 'Provided API key could not be found' });
      return;
    }
    const ttl = this.#o.tokenTtlSeconds ?? 3600;
    const token = randomBytes(24).toString('hex');
    this.#tokens.set(token, Date.now() + ttl * 1000);
    send(res, 200, {
      access_token: token,
      token_type: 'Bearer',
      expires_in: ttl,
      expiration: Math.floor(Date.now() / 1000) + ttl,
    });
  }
}

function fail(res: ServerResponse, code: ErrorCode): void {
  send(res, ERROR_CATALOGUE[code].http, errorCollectionFor(code));
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
