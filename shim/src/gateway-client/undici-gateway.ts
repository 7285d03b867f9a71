import { randomUUID } from 'node:crypto';
import {
  HEADERS,
  KeygateError,
  PATHS,
  type Secret,
  secretFromBase64,
  unwrapResponse,
  viewOf,
  wrapResponse,
} from '@keygate/shared';
import { Agent, type Dispatcher, request } from 'undici';
import type { z } from 'zod';
import type { CallOptions, GatewayClient, UnwrapResult, WrapResult } from '../core/ports.js';
import { type BreakerState, backoffMs, CircuitBreaker } from './breaker.js';
import { TokenError, TokenSource, tokenUrlsFor } from './token-source.js';
import { fromHttpStatus, fromTransportError, type GatewayFailure } from './translate.js';

/** TLS material for one endpoint: PEM bytes. */
export interface TlsFiles {
  readonly ca?: Buffer | undefined;
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
}

export interface UndiciGatewayOptions {
  /** Gateway base URLs in order of preference (KP_CONFIG.URL first, then KEYGATE.GATEWAY_URLS). */
  readonly urls: readonly string[];
  readonly instanceId: string;
  readonly crkId: string;
  readonly tokenUrl: string;
  readonly apiKey: Secret;
  readonly tls: TlsFiles;
  readonly tokenTls: TlsFiles;
  /** MAX_RETRIES: attempts after the first one. */
  readonly maxRetries: number;
  /** Total time for one wrap or unwrap including retries and the token, below apiserver's timeout. */
  readonly deadlineMs: number;
  /** BREAKER_FAILURES and BREAKER_OPEN_SECONDS (in ms), per URL. */
  readonly breaker: { readonly failureThreshold: number; readonly openMs: number };
  readonly backoff?: { readonly baseMs: number; readonly capMs: number };
  /**
   * Offer HTTP/2 (ALPN): calls share one connection per URL as streams. A gateway that serves
   * only HTTP/1.1 answers over that, on up to 16 keep-alive connections.
   */
  readonly http2?: boolean | undefined;
  /** GATEWAY_CONNECTIONS: HTTP/1.1 keep-alive connections per URL at most (default 16). */
  readonly connections?: number | undefined;
  readonly now?: () => number;
  /** Observers for metrics. */
  readonly onOutcome?: (url: string, op: string, outcome: string) => void;
  readonly onBreaker?: (url: string, state: BreakerState) => void;
}

/** Kept from the budget sent to the gateway (x-keygate-timeout-ms) for the answer's way back. */
export const ANSWER_MARGIN_MS = 50;
/** Largest DEK the client accepts back from an unwrap (the API's plaintext limit). */
const MAX_DEK_BYTES = 4096;

/** What bounds one attempt: the call's abort signal and deadline, and whether its timeout counts. */
interface AttemptLimits {
  readonly signal: AbortSignal;
  readonly deadline: number;
  readonly timeoutsCount: boolean;
}

interface Endpoint {
  readonly url: string;
  readonly breaker: CircuitBreaker;
}

/**
 * The GatewayClient port over HTTPS with undici: mutual TLS and keep-alive, failover across URLs,
 * retries with jittered exponential backoff inside one total deadline, a circuit breaker per URL,
 * and the IAM token. Every failure leaves as a KeygateError.
 */
export class UndiciGatewayClient implements GatewayClient {
  readonly #o: UndiciGatewayOptions;
  readonly #agent: Agent;
  readonly #tokenAgent: Agent;
  readonly #endpoints: Endpoint[];
  readonly #tokens: TokenSource;
  readonly #now: () => number;
  /** The shim report waiting to go out (HEADERS.shimReport), until an answer proves it arrived. */
  #report: string | undefined;
  /** `Bearer <token>` for the token it was made from: one string per token, not one per call. */
  #bearer: { readonly token: string; readonly header: string } | undefined;

  constructor(options: UndiciGatewayOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#agent = new Agent({
      connect: tlsOptions(options.tls),
      keepAliveTimeout: 60_000,
      connections: options.connections ?? 16,
      ...(options.http2 === true ? { allowH2: true, maxConcurrentStreams: 256 } : {}),
    });
    this.#tokenAgent = new Agent({ connect: tlsOptions(options.tokenTls), keepAliveTimeout: 60_000 });
    this.#endpoints = options.urls.map((url) => {
      const breaker = new CircuitBreaker({ ...options.breaker, now: this.#now });
      breaker.onChange = (state) => options.onBreaker?.(url, state);
      return { url: url.replace(/\/+$/, ''), breaker };
    });
    this.#tokens = new TokenSource({
      tokenUrls: tokenUrlsFor(
        options.tokenUrl,
        this.#endpoints.map((e) => e.url),
      ),
      apiKey: options.apiKey,
      dispatcher: this.#tokenAgent as Dispatcher,
      now: this.#now,
    });
  }

  /** Breaker state per URL (for metrics and tests). */
  breakerStates(): Record<string, BreakerState> {
    return Object.fromEntries(this.#endpoints.map((e) => [e.url, e.breaker.state]));
  }

  /**
   * Sends `header` (an encoded ShimReport) on the next calls until one of them is answered with a
   * 2xx: one report per key_id refresh (the heartbeat of the fleet view), not one per Encrypt.
   */
  reportOnNextCall(header: string): void {
    this.#report = header;
  }

  get tokenFetches(): number {
    return this.#tokens.fetches;
  }

  async wrap(dek: Uint8Array, aad: readonly string[], options?: CallOptions): Promise<WrapResult> {
    // Base64 straight from the caller's bytes: Buffer.from(dek) would leave a copy in Node's pool.
    // The base64 text itself (in this body and the request) is a string that cannot be zeroed.
    const body = { plaintext: viewOf(dek).toString('base64'), aad };
    const r = await this.#call('wrap', body, wrapResponse, options?.budgetMs);
    return { wrappedDek: Buffer.from(r.ciphertext, 'base64'), keyVersionId: r.keyVersion.id };
  }

  async unwrap(wrappedDek: Uint8Array, aad: readonly string[], options?: CallOptions): Promise<UnwrapResult> {
    const body = { ciphertext: viewOf(wrappedDek).toString('base64'), aad };
    const r = await this.#call('unwrap', body, unwrapResponse, options?.budgetMs);
    // Decoded into a buffer of its own (allocSecret), which the caller zeroes.
    const dek = secretFromBase64(r.plaintext, 1, MAX_DEK_BYTES);
    if (dek === undefined) {
      throw new KeygateError('GATEWAY_PROTOCOL_ERR', { detail: { reason: 'unwrapped DEK is not base64' } });
    }
    return { dek, keyVersionId: r.keyVersion.id };
  }

  async close(): Promise<void> {
    await Promise.all([this.#agent.close(), this.#tokenAgent.close()]);
  }

  async #call<S extends z.ZodType>(
    action: 'wrap' | 'unwrap',
    body: object,
    schema: S,
    budgetMs: number | undefined,
  ): Promise<z.output<S>> {
    const totalMs = Math.max(1, Math.min(this.#o.deadlineMs, budgetMs ?? Number.POSITIVE_INFINITY));
    const deadline = this.#now() + totalMs;
    // A timeout within a budget its caller cut short says nothing about the URL: the breaker
    // must not open because callers were late (a burst would turn into an outage).
    const timeoutsCount = totalMs >= this.#o.deadlineMs;
    const signal = AbortSignal.timeout(totalMs);
    const payload = JSON.stringify(body);
    const path = PATHS.keyAction(this.#o.crkId, action);
    // Built only when needed: an Error captures a stack trace, which costs on every call.
    let last: KeygateError | undefined;
    let tokenRetried = false;
    for (let attempt = 0, i = 0; attempt <= this.#o.maxRetries; attempt++) {
      const out = await this.#attemptWithToken(i, path, payload, { signal, deadline, timeoutsCount }, schema);
      if (out.ok) {
        this.#o.onOutcome?.(out.url, action, 'ok');
        return out.value;
      }
      if (out.noEndpoint) {
        last = new KeygateError('GATEWAY_UNAVAILABLE', {
          detail: { reason: 'every circuit breaker is open' },
        });
        break;
      }
      const f = out.failure;
      last = f.error;
      this.#o.onOutcome?.(out.url, action, f.error.code);
      if (f.tokenRejected && !tokenRetried) {
        tokenRetried = true;
        attempt--; // a refused token costs no retry
        continue;
      }
      if (!f.retryable) throw f.error;
      i++; // fail over to the next URL
      let wait = backoffMs(
        attempt,
        this.#o.backoff?.baseMs ?? 25,
        this.#o.backoff?.capMs ?? 250,
        Math.random,
      );
      // A busy gateway's Retry-After binds the next try when that goes to the same (only) URL; a
      // wait that does not fit in what is left of the deadline gives up now rather than at the end.
      if (f.retryAfterMs !== undefined && this.#endpoints.length === 1) wait = Math.max(wait, f.retryAfterMs);
      if (signal.aborted || this.#now() + wait >= deadline) break;
      await new Promise((r) => setTimeout(r, wait));
    }
    throw last ?? new KeygateError('GATEWAY_UNAVAILABLE', { detail: { reason: 'no attempt' } });
  }

  /** The endpoint for try number `i`: URLs in order from i, skipping those whose breaker is open. */
  #pick(i: number): Endpoint | undefined {
    const n = this.#endpoints.length;
    for (let k = 0; k < n; k++) {
      const ep = this.#endpoints[(i + k) % n];
      if (ep?.breaker.tryAcquire()) return ep;
    }
    return undefined;
  }

  async #attemptWithToken<S extends z.ZodType>(
    i: number,
    path: string,
    payload: string,
    limits: AttemptLimits,
    schema: S,
  ): Promise<
    | { ok: true; value: z.output<S>; url: string }
    | { ok: false; failure: GatewayFailure; url: string; noEndpoint?: boolean }
  > {
    let token: string;
    try {
      token = await this.#tokens.get(limits.signal);
    } catch (err) {
      const failure = err instanceof TokenError ? err.failure : fromTransportError(err, this.#o.tokenUrl);
      return { ok: false, failure, url: this.#o.tokenUrl };
    }
    const ep = this.#pick(i);
    if (!ep)
      return {
        ok: false,
        failure: { error: new KeygateError('GATEWAY_UNAVAILABLE'), retryable: false },
        url: '',
        noEndpoint: true,
      };
    const out = await this.#attempt(ep, token, path, payload, limits, schema);
    return { ...out, url: ep.url };
  }

  #bearerFor(token: string): string {
    const b = this.#bearer;
    if (b !== undefined && b.token === token) return b.header;
    const header = `Bearer ${token}`;
    this.#bearer = { token, header };
    return header;
  }

  async #attempt<S extends z.ZodType>(
    ep: Endpoint,
    token: string,
    path: string,
    payload: string,
    { signal, deadline, timeoutsCount }: AttemptLimits,
    schema: S,
  ): Promise<{ ok: true; value: z.output<S> } | { ok: false; failure: GatewayFailure }> {
    let status: number;
    let json: unknown;
    let retryAfter: string | string[] | undefined;
    // What is left of the caller's deadline, less the answer's way back: the gateway drops work
    // that would finish after it instead of spending the HSM on an answer nobody reads.
    const timeoutMs = Math.max(1, Math.floor(deadline - this.#now() - ANSWER_MARGIN_MS));
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: 'application/json',
      [HEADERS.authorization]: this.#bearerFor(token),
      [HEADERS.instance]: this.#o.instanceId,
      [HEADERS.correlationId]: randomUUID(),
      [HEADERS.timeoutMs]: String(timeoutMs),
    };
    const report = this.#report;
    if (report !== undefined) headers[HEADERS.shimReport] = report;
    try {
      const res = await request(`${ep.url}${path}`, {
        method: 'POST',
        dispatcher: this.#agent,
        headers,
        body: payload,
        signal,
      });
      status = res.statusCode;
      retryAfter = res.headers[HEADERS.retryAfter];
      json = await res.body.json().catch(() => undefined);
    } catch (err) {
      const failure = fromTransportError(err, ep.url);
      if (failure.error.code === 'GATEWAY_TIMEOUT' && !timeoutsCount) ep.breaker.release();
      else ep.breaker.onFailure();
      return { ok: false, failure };
    }
    if (status >= 200 && status <= 299) {
      ep.breaker.onSuccess();
      if (report !== undefined && this.#report === report) this.#report = undefined;
      const parsed = schema.safeParse(json);
      if (parsed.success) return { ok: true, value: parsed.data };
      const error = new KeygateError('GATEWAY_PROTOCOL_ERR', {
        detail: { url: ep.url, reason: 'response body' },
      });
      return { ok: false, failure: { error, retryable: false } };
    }
    const failure = fromHttpStatus(status, json, ep.url, retryAfter);
    if (failure.retryable && !failure.busy) ep.breaker.onFailure();
    else ep.breaker.onSuccess();
    if (failure.tokenRejected) this.#tokens.invalidate(token);
    return { ok: false, failure };
  }
}

function tlsOptions(t: TlsFiles): { ca?: Buffer; cert?: Buffer; key?: Buffer } {
  const o: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
  if (t.ca) o.ca = t.ca;
  if (t.cert) o.cert = t.cert;
  if (t.key) o.key = t.key;
  return o;
}
