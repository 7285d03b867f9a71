import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ServiceIdentity } from '../core/auth/identity-source.js';

/** One logged-in person: who, how, and the CSRF token of their forms. */
export interface Session {
  readonly identity: ServiceIdentity;
  /** `apikey` or `certificate`. */
  readonly via: 'apikey' | 'certificate';
  /** The API key's id (never the key) when logged in with one: a revoked key ends the session. */
  readonly apiKeyId?: string | undefined;
  /** Sent in a hidden field of every form and checked on every POST. */
  readonly csrf: string;
  readonly createdAt: number;
  lastUsed: number;
  /** A message for the next page shown (the result of the last action), then cleared. */
  flash?: { readonly text: string; readonly ok: boolean } | undefined;
}

/** SHA-256 of a session id: the store never holds an id a memory dump could replay. */
function hashId(id: string): string {
  return createHash('sha256').update(id).digest('hex');
}

/**
 * Console sessions in memory (one gateway process; a restart logs everyone out). Ids are 32
 * random bytes (base64url), kept only as hashes; a session ends after `idleMs` without use or
 * `ttlMs` after login, whichever comes first.
 */
export class SessionStore {
  readonly #sessions = new Map<string, Session>();
  readonly #idleMs: number;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(opts: { idleMs: number; ttlMs: number; now: () => number }) {
    this.#idleMs = opts.idleMs;
    this.#ttlMs = opts.ttlMs;
    this.#now = opts.now;
  }

  /** Starts a session; returns its id (for the cookie, never stored) and the session. */
  create(
    identity: ServiceIdentity,
    via: Session['via'],
    apiKeyId?: string,
  ): { id: string; session: Session } {
    this.sweep();
    const id = randomBytes(32).toString('base64url');
    const now = this.#now();
    const session: Session = {
      identity,
      via,
      apiKeyId,
      csrf: randomBytes(32).toString('base64url'),
      createdAt: now,
      lastUsed: now,
    };
    this.#sessions.set(hashId(id), session);
    return { id, session };
  }

  /** The live session of cookie value `id` (and marks it used), or undefined (unknown or ended). */
  touch(id: string | undefined): Session | undefined {
    if (id === undefined || id.length === 0 || id.length > 128) return undefined;
    const key = hashId(id);
    const s = this.#sessions.get(key);
    if (s === undefined) return undefined;
    const now = this.#now();
    if (this.#ended(s, now)) {
      this.#sessions.delete(key);
      return undefined;
    }
    s.lastUsed = now;
    return s;
  }

  /** Ends the session of `id` (logout). */
  end(id: string | undefined): void {
    if (id !== undefined) this.#sessions.delete(hashId(id));
  }

  /** Ends every session of `identity` (used when its API key is found revoked). */
  endIdentity(name: string): void {
    for (const [k, s] of this.#sessions) if (s.identity.name === name) this.#sessions.delete(k);
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Drops ended sessions. */
  sweep(): void {
    const now = this.#now();
    for (const [k, s] of this.#sessions) if (this.#ended(s, now)) this.#sessions.delete(k);
  }

  #ended(s: Session, now: number): boolean {
    return now - s.lastUsed > this.#idleMs || now - s.createdAt > this.#ttlMs;
  }
}

/** Compares a presented CSRF token with the session's in constant time. */
export function csrfMatches(session: Session, presented: string | undefined): boolean {
  if (presented === undefined) return false;
  const a = Buffer.from(presented);
  const b = Buffer.from(session.csrf);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Failed logins per source address: after `max` failures within `windowMs` the address is
 * refused until the window passes (CONSOLE_LOGIN_LOCKED). A success clears its count.
 */
export class LoginLimiter {
  readonly #failures = new Map<string, { count: number; since: number }>();
  readonly #max: number;
  readonly #windowMs: number;
  readonly #now: () => number;

  constructor(opts: { max: number; windowMs: number; now: () => number }) {
    this.#max = opts.max;
    this.#windowMs = opts.windowMs;
    this.#now = opts.now;
  }

  locked(source: string): boolean {
    const f = this.#failures.get(source);
    if (f === undefined) return false;
    if (this.#now() - f.since > this.#windowMs) {
      this.#failures.delete(source);
      return false;
    }
    return f.count >= this.#max;
  }

  failed(source: string): void {
    const now = this.#now();
    const f = this.#failures.get(source);
    if (f === undefined || now - f.since > this.#windowMs)
      this.#failures.set(source, { count: 1, since: now });
    else f.count++;
    // Bounded: a flood from many addresses cannot grow the map without limit.
    if (this.#failures.size > 10_000) {
      const oldest = this.#failures.keys().next().value;
      if (oldest !== undefined) this.#failures.delete(oldest);
    }
  }

  succeeded(source: string): void {
    this.#failures.delete(source);
  }
}
