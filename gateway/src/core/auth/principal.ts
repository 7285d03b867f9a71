/**
 * Who is calling, and what they may do. The HTTP layer builds a Principal for every request
 * (from the client certificate, and in token mode from the access token) and asks the
 * AccessPolicy before any key operation. Both are ports: core never sees TLS or JWT libraries.
 */

/**
 * Roles a service identity can hold on an instance. `identities:admin` and `fleet:read` are global:
 * they are held under the scope GLOBAL_SCOPE (`'*'`) only. `identities:admin` lets its holder manage
 * identities and API keys when they live in PostgreSQL; `fleet:read` lets it see every cluster's
 * shims and key use (the fleet view, the console's login) and is implied by `identities:admin`.
 */
export const ROLES = [
  'wrap',
  'unwrap',
  'rewrap',
  'keys:read',
  'keys:admin',
  'identities:admin',
  'fleet:read',
] as const;
export type Role = (typeof ROLES)[number];

/** The roles map key of global roles (never an instance id: those start with a letter or digit). */
export const GLOBAL_SCOPE = '*';
/** Roles that exist only under GLOBAL_SCOPE, and the only roles allowed there. */
export const GLOBAL_ROLES: readonly Role[] = ['identities:admin', 'fleet:read'];

/** The client certificate of the connection, as the TLS layer saw it. */
export interface PeerCertificate {
  /** SAN URI when present (e.g. spiffe://keygate/cluster/prod-eu-1), else the subject CN. */
  readonly identity: string;
  /** RFC 8705 `x5t#S256`: base64url of SHA-256 of the certificate's DER. */
  readonly thumbprint: string;
}

/** An authenticated caller. */
export interface Principal {
  readonly cert: PeerCertificate;
  /** The service identity name (token subject), or the certificate identity in allow-list mode. */
  readonly subject: string;
  /** Roles per instance id. */
  readonly roles: Readonly<Record<string, readonly Role[]>>;
}

/** What an authenticator gets from the transport for one request. */
export interface AuthInput {
  readonly cert: PeerCertificate;
  /** The raw `authorization` header, when sent. */
  readonly authorization?: string | undefined;
}

/** Turns a request's credentials into a Principal, or throws an AUTH_* KeygateError. */
export interface Authenticator {
  authenticate(input: AuthInput): Promise<Principal>;
}

/** Decides whether a principal may use `role` on `instance`; throws FORBIDDEN_ERR when not. */
export interface AccessPolicy {
  authorize(principal: Principal, instance: string, role: Role): void;
}
