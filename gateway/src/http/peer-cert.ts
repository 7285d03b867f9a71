import { createHash } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { KeygateError } from '@keygate/shared/errors';
import type { PeerCertificate } from '../core/auth/principal.js';
import type { Ctx } from './env.js';

/**
 * Per connection: the peer certificate cannot change on a connection (the server disables TLS
 * renegotiation, see server.ts), so it is parsed and hashed once, not on every keep-alive request.
 */
const byConnection = new WeakMap<object, PeerCertificate>();

/**
 * The client certificate of the request's TLS connection: identity = first SAN URI, else the
 * subject CN; thumbprint = base64url(SHA-256(DER)) (RFC 8705 x5t#S256). AUTH_CERT_REQUIRED if none.
 */
export function peerCertificate(c: Ctx): PeerCertificate {
  const incoming = c.env.incoming as { socket: unknown; stream?: { session?: object | undefined } };
  // HTTP/2: `incoming.socket` is a new proxy per stream, the session is the connection.
  const connection = incoming.stream?.session ?? (incoming.socket as object);
  const cached = byConnection.get(connection);
  if (cached !== undefined) return cached;
  const socket = incoming.socket as Partial<TLSSocket>;
  const found = readPeerCertificate(socket);
  // Only a connection whose renegotiation is off may keep its answer (HTTP/2 reads the flag
  // through its proxy from the session's TLS socket).
  if ((socket as { keygateNoRenegotiation?: boolean }).keygateNoRenegotiation === true)
    byConnection.set(connection, found);
  return found;
}

function readPeerCertificate(socket: Partial<TLSSocket>): PeerCertificate {
  const cert = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate(false) : undefined;
  if (!cert?.raw || cert.raw.length === 0) throw new KeygateError('AUTH_CERT_REQUIRED');
  const uri = (cert.subjectaltname ?? '')
    .split(', ')
    .find((n) => n.startsWith('URI:'))
    ?.slice(4);
  const cn = cert.subject?.CN;
  const identity = uri ?? (Array.isArray(cn) ? cn[0] : cn);
  if (!identity) throw new KeygateError('AUTH_CERT_REQUIRED', { detail: { reason: 'no SAN URI or CN' } });
  return { identity, thumbprint: createHash('sha256').update(cert.raw).digest('base64url') };
}
