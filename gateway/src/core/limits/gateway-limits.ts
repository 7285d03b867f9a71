import { Admission } from './admission.js';
import { type RateLimit, TokenBuckets } from './token-buckets.js';

/** The `limits` section of the config, as the core needs it (docs/gateway.md). */
export interface LimitSettings {
  readonly maxInFlight: number;
  readonly maxQueued: number;
  readonly tokenPerCertificate: RateLimit;
  readonly tokenPerIdentity: RateLimit;
  readonly refusalsPerCertificate: RateLimit;
  readonly refusalsPerIdentity: RateLimit;
}

/** Every load and abuse limit of one gateway process. Successful key operations meet only `admission`. */
export interface GatewayLimits {
  /** Key operations running and waiting. */
  readonly admission: Admission;
  /** Token requests per client certificate (thumbprint), before the API key is checked. */
  readonly tokenPerCertificate: TokenBuckets;
  /** Tokens issued per service identity. */
  readonly tokenPerIdentity: TokenBuckets;
  /** Refused requests per client certificate and per identity; beyond them refusals answer 429. */
  readonly refusalsPerCertificate: TokenBuckets;
  readonly refusalsPerIdentity: TokenBuckets;
}

/** Builds the limits from the settings; `now` is the clock of the deadlines (ms since the epoch). */
export function createGatewayLimits(s: LimitSettings, now: () => number): GatewayLimits {
  return {
    admission: new Admission({ maxInFlight: s.maxInFlight, maxQueued: s.maxQueued, now }),
    tokenPerCertificate: new TokenBuckets(s.tokenPerCertificate),
    tokenPerIdentity: new TokenBuckets(s.tokenPerIdentity),
    refusalsPerCertificate: new TokenBuckets(s.refusalsPerCertificate),
    refusalsPerIdentity: new TokenBuckets(s.refusalsPerIdentity),
  };
}
