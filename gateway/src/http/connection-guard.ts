import { isIPv6, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { type RateLimit, TokenBuckets } from '../core/limits/token-buckets.js';

/** Per-source connection limits (a source is an IPv4 address or an IPv6 /64). */
export interface ConnectionLimits {
  /** Open connections at once. */
  readonly connections: number;
  /** TLS handshakes in progress at once: each costs the event loop a key exchange and a signature. */
  readonly handshakes: number;
  /** New connections, as a rate. */
  readonly newConnections: RateLimit;
}

/** Why a connection was closed at once. */
export type RefusalReason = 'connections' | 'handshakes' | 'rate';

interface SourceState {
  open: number;
  handshaking: number;
}

/**
 * Closes new TCP connections from a source that already holds too many connections or
 * handshakes, or opens them too fast, before any TLS work is done for them. One source (a client
 * flooding handshakes without a certificate, a slow client) then cannot take the event loop or
 * the file descriptors from the others. Sources behind one NAT share the limits: the defaults are
 * generous for that.
 */
export class ConnectionGuard {
  readonly #limits: ConnectionLimits;
  readonly #sources = new Map<string, SourceState>();
  /** Raw sockets still in their handshake, by "address:port" (how the TLS socket finds its raw one). */
  readonly #handshaking = new Map<string, string>();
  readonly #rate: TokenBuckets;
  readonly #now: () => number;
  readonly refused: Record<RefusalReason, number> = { connections: 0, handshakes: 0, rate: 0 };

  constructor(limits: ConnectionLimits, now: () => number = Date.now) {
    this.#limits = limits;
    this.#rate = new TokenBuckets(limits.newConnections, 100_000);
    this.#now = now;
  }

  /** Open connections and handshakes in progress, over every source. */
  get stats(): { open: number; handshaking: number; sources: number } {
    let open = 0;
    for (const s of this.#sources.values()) open += s.open;
    return { open, handshaking: this.#handshaking.size, sources: this.#sources.size };
  }

  /** The server's `connection` listener (runs before TLS starts): admits or destroys `socket`. */
  onConnection(socket: Socket): void {
    const addr = socket.remoteAddress;
    if (addr === undefined) {
      socket.destroy();
      return;
    }
    const source = sourceOf(addr);
    let state = this.#sources.get(source);
    const reason =
      state !== undefined && state.open >= this.#limits.connections
        ? 'connections'
        : state !== undefined && state.handshaking >= this.#limits.handshakes
          ? 'handshakes'
          : this.#rate.take(source, this.#now()) > 0
            ? 'rate'
            : undefined;
    if (reason !== undefined) {
      this.refused[reason]++;
      socket.destroy();
      return;
    }
    if (state === undefined) {
      state = { open: 0, handshaking: 0 };
      this.#sources.set(source, state);
    }
    const s = state;
    s.open++;
    s.handshaking++;
    const key = `${addr}:${socket.remotePort}`;
    this.#handshaking.set(key, source);
    socket.once('close', () => {
      s.open--;
      if (this.#handshaking.get(key) === source) {
        this.#handshaking.delete(key);
        s.handshaking--;
      }
      if (s.open === 0) this.#sources.delete(source);
    });
  }

  /** The server's `secureConnection` listener: the handshake of `tls` is over. */
  onSecure(tls: TLSSocket): void {
    const key = `${tls.remoteAddress}:${tls.remotePort}`;
    const source = this.#handshaking.get(key);
    if (source === undefined) return;
    this.#handshaking.delete(key);
    const s = this.#sources.get(source);
    if (s !== undefined) s.handshaking--;
  }
}

/** IPv4 as is (also when mapped into IPv6); IPv6 by its /64, which one host usually holds whole. */
export function sourceOf(address: string): string {
  if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
  if (!isIPv6(address)) return address;
  const groups = expandIPv6(address);
  return `${groups.slice(0, 4).join(':')}::/64`;
}

function expandIPv6(address: string): string[] {
  const [head = '', tail] = address.split('%')[0]?.split('::') ?? [''];
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : Array(8 - left.length - right.length).fill('0');
  return [...left, ...zeros, ...right].map((g) => g.toLowerCase().replace(/^0+(?=.)/, ''));
}
