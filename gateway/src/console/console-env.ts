import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import type { ServiceIdentity } from '../core/auth/identity-source.js';
import type { Session } from './sessions.js';

/** Per-request values of the console app. */
export interface ConsoleVars {
  requestId: string;
  /** Set by the session guard on every page and action (not on login, logout and the style sheet). */
  session: Session;
  /** The session's identity as it is now (roles re-read on every request). */
  identity: ServiceIdentity;
  /** The session cookie's value (for logout). */
  sessionId: string;
}

export interface ConsoleEnv {
  Bindings: HttpBindings;
  Variables: ConsoleVars;
}

export type ConsoleCtx = Context<ConsoleEnv>;

/** The session cookie: `__Host-` so that it is Secure, host-only and Path=/ by the browser's rules. */
export const SESSION_COOKIE = '__Host-keygate-session';

/** The `Set-Cookie` value that starts (or, with an empty id, ends) a session. */
export function sessionCookie(id: string): string {
  const end = id === '' ? '; Max-Age=0' : '';
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; Secure; SameSite=Strict${end}`;
}

/** The session cookie's value from the request, or undefined. */
export function readSessionCookie(c: ConsoleCtx): string | undefined {
  const header = c.req.header('cookie');
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** The source address of the request's connection (for the failed-login limit). */
export function sourceAddress(c: ConsoleCtx): string {
  const env = c.env as Partial<ConsoleEnv['Bindings']> | undefined;
  return env?.incoming?.socket?.remoteAddress ?? 'unknown';
}
