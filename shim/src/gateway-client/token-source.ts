import { APIKEY_GRANT_TYPE, KeygateError, type Secret, tokenResponse } from '@keygate/shared';
import { type Dispatcher, request } from 'undici';
import { SingleFlight } from '../core/single-flight.js';
import { fromTokenStatus, fromTransportError, type GatewayFailure } from './translate.js';

export interface TokenSourceOptions {
  /** TOKEN_URL first, then the same path on the other gateway URLs when TOKEN_URL is a gateway's. */
  readonly tokenUrls: readonly string[];
  readonly apiKey: Secret;
  readonly dispatcher: Dispatcher;
  readonly now: () => number;
  /** Share of the token's lifetime after which it is refreshed in the background (default 0.8). */
  readonly refreshAt?: number;
}

interface Token {
  readonly value: string;
  readonly refreshAt: number;
  readonly expiresAt: number;
}

/** Thrown with the translated failure so that the caller can decide on retries. */
export class TokenError extends Error {
  constructor(
    readonly failure: GatewayFailure,
    /** True when the URL could not be reached at all (so another one may be tried). */
    readonly unreachable = false,
  ) {
    super(failure.error.message);
  }
}

/**
 * The token URLs to try: TOKEN_URL, then — when TOKEN_URL is served by one of the gateways — the
 * same path on every other gateway URL, since every replica issues tokens with shared keys.
 */
export function tokenUrlsFor(tokenUrl: string, gatewayUrls: readonly string[]): string[] {
  const token = new URL(tokenUrl);
  const origins = gatewayUrls.map((u) => new URL(u).origin);
  if (!origins.includes(token.origin)) return [tokenUrl];
  const others = origins.filter((o) => o !== token.origin).map((o) => `${o}${token.pathname}${token.search}`);
  return [tokenUrl, ...new Set(others)];
}

/**
 * The IAM access token: fetched from TOKEN_URL with the API key, cached, refreshed before it expires
 * by a single caller while the others keep using the current one. Never logs the key or the token.
 */
export class TokenSource {
  readonly #o: TokenSourceOptions;
  readonly #flight = new SingleFlight<'token', Token>();
  #token: Token | undefined;
  fetches = 0;

  constructor(options: TokenSourceOptions) {
    this.#o = options;
  }

  /** A valid token; waits for a fetch only when there is none or it has expired. */
  async get(signal: AbortSignal): Promise<string> {
    const now = this.#o.now();
    const t = this.#token;
    if (t && now < t.refreshAt) return t.value;
    if (t && now < t.expiresAt) {
      // Refresh in the background; a failure is retried by the next caller.
      this.#flight.run('token', () => this.#fetch(AbortSignal.timeout(10_000))).catch(() => undefined);
      return t.value;
    }
    return (await this.#flight.run('token', () => this.#fetch(signal))).value;
  }

  /** Forgets the token (the gateway refused it). */
  invalidate(value: string): void {
    if (this.#token?.value === value) this.#token = undefined;
  }

  /**
   * Asks each token URL in turn: one that cannot be reached (a transport failure) makes the next
   * one be asked; any HTTP answer, good or bad, ends the search.
   */
  async #fetch(signal: AbortSignal): Promise<Token> {
    let last: unknown;
    for (const url of this.#o.tokenUrls) {
      try {
        return await this.#fetchFrom(url, signal);
      } catch (err) {
        last = err;
        if (!(err instanceof TokenError && err.unreachable) || signal.aborted) throw err;
      }
    }
    throw last;
  }

  async #fetchFrom(tokenUrl: string, signal: AbortSignal): Promise<Token> {
    this.fetches++;
    const body = new URLSearchParams({
      grant_type: APIKEY_GRANT_TYPE,
      apikey: this.#o.apiKey.reveal(),
    }).toString();
    const started = this.#o.now();
    let status: number;
    let json: unknown;
    try {
      const res = await request(tokenUrl, {
        method: 'POST',
        dispatcher: this.#o.dispatcher,
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body,
        signal,
      });
      status = res.statusCode;
      json = await res.body.json().catch(() => undefined);
    } catch (err) {
      throw new TokenError(fromTransportError(err, tokenUrl), true);
    }
    if (status < 200 || status > 299) throw new TokenError(fromTokenStatus(status, json, tokenUrl));
    const parsed = tokenResponse.safeParse(json);
    if (!parsed.success) {
      throw new TokenError({
        error: new KeygateError('GATEWAY_PROTOCOL_ERR', {
          detail: { url: tokenUrl, reason: 'token body' },
        }),
        retryable: false,
      });
    }
    // Lifetime from our clock, not the server's `expiration`, so that clock skew does not matter.
    const lifetime = parsed.data.expires_in * 1000;
    const token = {
      value: parsed.data.access_token,
      refreshAt: started + lifetime * (this.#o.refreshAt ?? 0.8),
      expiresAt: started + lifetime,
    };
    this.#token = token;
    return token;
  }
}
