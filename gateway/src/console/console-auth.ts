import type { TLSSocket } from 'node:tls';
import { KeygateError } from '@keygate/shared/errors';
import type { Hono, MiddlewareHandler } from 'hono';
import { html } from 'hono/html';
import type { ServiceIdentity } from '../core/auth/identity-source.js';
import { hostAllowed, normaliseHost } from './allowed-hosts.js';
import { type ConsoleCore, mayUseConsole } from './console-core.js';
import {
  type ConsoleCtx,
  type ConsoleEnv,
  readSessionCookie,
  sessionCookie,
  sourceAddress,
} from './console-env.js';
import { messagePage, page } from './layout.js';
import { csrfMatches } from './sessions.js';

/** The client certificate of the connection when it chains to the gateway's client CA. */
function verifiedCertIdentity(c: ConsoleCtx): string | undefined {
  const env = c.env as Partial<ConsoleEnv['Bindings']> | undefined;
  const socket = (env?.incoming?.socket ?? {}) as Partial<TLSSocket>;
  if (socket.authorized !== true || typeof socket.getPeerCertificate !== 'function') return undefined;
  const cert = socket.getPeerCertificate(false);
  if (!cert?.raw || cert.raw.length === 0) return undefined;
  const uri = (cert.subjectaltname ?? '')
    .split(', ')
    .find((n) => n.startsWith('URI:'))
    ?.slice(4);
  const cn = cert.subject?.CN;
  return uri ?? (Array.isArray(cn) ? cn[0] : cn);
}

/** A refusal page with the catalogue's status and code (never a stack trace). */
export function refusal(
  c: ConsoleCtx,
  code: KeygateError['code'],
  title: string,
  text: string,
): Response | Promise<Response> {
  const e = new KeygateError(code);
  c.status(e.httpStatus as 400);
  c.header('x-keygate-error', code);
  return c.html(messagePage(title, `${text} (${code})`));
}

function loginPage(c: ConsoleCtx, core: ConsoleCore, note?: string): Promise<string> | string {
  const cert = verifiedCertIdentity(c);
  const apiKeys = core.deps.identities !== undefined;
  return page(
    { title: 'Log in' },
    html`<div class="login">
<h1>Log in to the keygate console</h1>
${note === undefined ? '' : html`<p class="flash bad" role="alert">${note}</p>`}
${
  apiKeys
    ? html`<form method="post" action="/login">
<div class="field"><label for="apikey">API key of an identity with <code>fleet:read</code></label>
<input id="apikey" name="apikey" type="password" autocomplete="current-password" required autofocus></div>
<p><button class="primary" type="submit">Log in</button></p>
</form>`
    : html`<p class="muted">This gateway has no identities (certificate allow-list mode): API-key login is not available.</p>`
}
${
  cert === undefined || core.deps.identityForCert === undefined
    ? ''
    : html`<form method="post" action="/login/certificate"><p>Your browser presented the certificate <code>${cert}</code>.</p>
<p><button type="submit">Log in with this certificate</button></p></form>`
}
</div>`,
  ) as Promise<string> | string;
}

/** Starts the session of `identity` after the checks both login forms share. */
async function finishLogin(
  c: ConsoleCtx,
  core: ConsoleCore,
  started: number,
  found: { identity: ServiceIdentity; apiKeyId?: string | undefined } | undefined,
  via: 'apikey' | 'certificate',
  certIdentity: string | undefined,
): Promise<Response> {
  const source = sourceAddress(c);
  const base = { certIdentity, target: via };
  if (found === undefined) {
    core.logins.failed(source);
    await core.auditQuietly(
      core.event(c, 'console.login', 'denied', started, { ...base, errorCode: 'AUTH_APIKEY_INVALID' }),
    );
    c.status(401);
    c.header('x-keygate-error', 'AUTH_APIKEY_INVALID');
    return c.html(loginPage(c, core, 'That API key is not valid (AUTH_APIKEY_INVALID).'));
  }
  const name = found.identity.name;
  if (!mayUseConsole(found.identity)) {
    core.logins.failed(source);
    await core.auditQuietly(
      core.event(c, 'console.login', 'denied', started, {
        ...base,
        identity: name,
        errorCode: 'FORBIDDEN_ERR',
      }),
    );
    return refusal(
      c,
      'FORBIDDEN_ERR',
      'Not allowed',
      `Identity ${name} does not hold fleet:read under '*', which the console needs.`,
    );
  }
  try {
    await core.audit(core.event(c, 'console.login', 'success', started, { ...base, identity: name }));
  } catch {
    return refusal(
      c,
      'AUDIT_UNAVAILABLE',
      'Audit log unavailable',
      'The login could not be audited, so it was refused.',
    );
  }
  core.logins.succeeded(source);
  const { id } = core.sessions.create(found.identity, via, found.apiKeyId);
  c.header('set-cookie', sessionCookie(id));
  return c.redirect('/keys', 303);
}

/** GET/POST /login, POST /login/certificate and POST /logout. */
export function registerAuth(app: Hono<ConsoleEnv>, core: ConsoleCore): void {
  app.get('/login', (c) => c.html(loginPage(c, core)));

  app.post('/login', async (c) => {
    const started = performance.now();
    if (core.logins.locked(sourceAddress(c))) {
      await core.auditQuietly(
        core.event(c, 'console.login', 'denied', started, {
          target: 'apikey',
          errorCode: 'CONSOLE_LOGIN_LOCKED',
        }),
      );
      return refusal(
        c,
        'CONSOLE_LOGIN_LOCKED',
        'Too many failed logins',
        'Wait a few minutes and try again.',
      );
    }
    const form = await c.req.parseBody();
    const key = typeof form.apikey === 'string' ? form.apikey.trim() : '';
    const src = core.deps.identities;
    const match =
      key.length === 0 || key.length > 512 || src === undefined ? undefined : await src.findByApiKey(key);
    return finishLogin(
      c,
      core,
      started,
      match === undefined ? undefined : { identity: match.identity, apiKeyId: match.apiKeyId },
      'apikey',
      undefined,
    );
  });

  app.post('/login/certificate', async (c) => {
    const started = performance.now();
    const cert = verifiedCertIdentity(c);
    const lookup = core.deps.identityForCert;
    const identity = cert === undefined || lookup === undefined ? undefined : await lookup(cert);
    if (cert === undefined) {
      await core.auditQuietly(
        core.event(c, 'console.login', 'denied', started, {
          target: 'certificate',
          errorCode: 'AUTH_CERT_REQUIRED',
        }),
      );
      return refusal(
        c,
        'AUTH_CERT_REQUIRED',
        'No certificate',
        'The browser presented no certificate from the gateway CA.',
      );
    }
    return finishLogin(c, core, started, identity && { identity }, 'certificate', cert);
  });

  app.post('/logout', async (c) => {
    const started = performance.now();
    const id = readSessionCookie(c);
    const session = core.sessions.touch(id);
    const form = await c.req.parseBody();
    if (
      session !== undefined &&
      !csrfMatches(session, typeof form.csrf === 'string' ? form.csrf : undefined)
    ) {
      return refusal(
        c,
        'CONSOLE_CSRF_REFUSED',
        'Request refused',
        'The logout form was not sent from this session.',
      );
    }
    if (session !== undefined) {
      core.sessions.end(id);
      await core.auditQuietly(
        core.event(c, 'console.logout', 'success', started, { identity: session.identity.name }),
      );
    }
    c.header('set-cookie', sessionCookie(''));
    return c.redirect('/login', 303);
  });
}

/**
 * Every page and action: a live session (else 401 CONSOLE_SESSION_EXPIRED, or a redirect to the
 * login page when no cookie was sent at all).
 */
export function sessionGuard(core: ConsoleCore): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    const id = readSessionCookie(c);
    if (id === undefined && c.req.method === 'GET') return c.redirect('/login', 303);
    const session = core.sessions.touch(id);
    const identity = session === undefined ? undefined : core.current(session);
    if (session === undefined || identity === undefined || id === undefined) {
      core.sessions.end(id);
      c.header('set-cookie', sessionCookie(''));
      return refusal(
        c,
        'CONSOLE_SESSION_EXPIRED',
        'Session ended',
        'Your console session has ended; log in again.',
      );
    }
    c.set('session', session);
    c.set('sessionId', id);
    c.set('identity', identity);
    return next();
  };
}

/**
 * Every request: its Host must be one the console answers to (console.allowedHosts), else
 * 421 CONSOLE_HOST_REFUSED. This is what stops DNS rebinding: a foreign page whose name now
 * points at the console is same-origin with itself, so the Origin check alone would let it by.
 */
export function hostGuard(allowed: ReadonlySet<string>): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    let host: string | undefined;
    try {
      host = normaliseHost(new URL(c.req.url).hostname);
    } catch {
      host = undefined;
    }
    if (host === undefined || !hostAllowed(allowed, host)) {
      return refusal(
        c,
        'CONSOLE_HOST_REFUSED',
        'Wrong address',
        'The console does not answer to this host name.',
      );
    }
    return next();
  };
}

/**
 * Every POST: a same-origin request (Origin and Sec-Fetch-Site, when the browser sends them),
 * and, past login, the session's CSRF token in the form's `csrf` field. Else 403 CONSOLE_CSRF_REFUSED.
 */
export function originGuard(): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    if (c.req.method !== 'POST') return next();
    const site = c.req.header('sec-fetch-site');
    const origin = c.req.header('origin');
    const host = c.req.header('host');
    const sameOrigin = origin === undefined || (host !== undefined && origin === `https://${host}`);
    if ((site !== undefined && site !== 'same-origin') || !sameOrigin) {
      return refusal(
        c,
        'CONSOLE_CSRF_REFUSED',
        'Request refused',
        'The form did not come from this console.',
      );
    }
    return next();
  };
}

/** After sessionGuard on POST: the form's `csrf` field must be the session's token. */
export function csrfGuard(): MiddlewareHandler<ConsoleEnv> {
  return async (c, next) => {
    if (c.req.method !== 'POST') return next();
    const form = await c.req.parseBody();
    const token = typeof form.csrf === 'string' ? form.csrf : undefined;
    if (!csrfMatches(c.get('session'), token)) {
      return refusal(
        c,
        'CONSOLE_CSRF_REFUSED',
        'Request refused',
        'The form was not sent from this console session (missing or wrong CSRF token). Reload the page and try again.',
      );
    }
    return next();
  };
}
