import { randomUUID } from 'node:crypto';
import { asKeygateError } from '@keygate/shared/errors';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { csrfGuard, hostGuard, originGuard, refusal, registerAuth, sessionGuard } from './console-auth.js';
import { ConsoleCore } from './console-core.js';
import type { ConsoleEnv } from './console-env.js';
import { messagePage } from './layout.js';
import { registerAuditPages } from './pages-audit.js';
import { registerFleetPages } from './pages-fleet.js';
import { registerKeyPages } from './pages-keys.js';
import { registerRotationPages } from './pages-rotation.js';
import { registerStatusPage } from './pages-status.js';
import type { ConsoleDeps } from './ports.js';
import { CONSOLE_CSS } from './style.js';

/** docs/console.md "Security model": no script, no frame, no foreign origin. */
export const CONSOLE_CSP =
  "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** Largest form body the console reads. */
const FORM_LIMIT_BYTES = 16 * 1024;

/** The console's own hono app (no Key Protect route here; no console route on the API listener). */
export function createConsoleApp(deps: ConsoleDeps): { app: Hono<ConsoleEnv>; core: ConsoleCore } {
  const core = new ConsoleCore(deps);
  const app = new Hono<ConsoleEnv>();

  app.use('*', async (c, next) => {
    c.set('requestId', randomUUID());
    await next();
    c.header('content-security-policy', CONSOLE_CSP);
    c.header('cache-control', 'no-store');
    c.header('x-content-type-options', 'nosniff');
    // Not no-referrer: with it, browsers send `Origin: null` on same-origin form posts, which the origin check refuses.
    c.header('referrer-policy', 'same-origin');
    c.header('x-frame-options', 'DENY');
    c.header('strict-transport-security', 'max-age=31536000');
    c.header('cross-origin-opener-policy', 'same-origin');
    c.header('cross-origin-resource-policy', 'same-origin');
  });
  // Console forms are small: a larger body is refused before it is read.
  app.use(
    '*',
    bodyLimit({
      maxSize: FORM_LIMIT_BYTES,
      onError: (c) => refusal(c, 'BODY_TOO_LARGE_ERR', 'Refused', 'The form is too large.'),
    }),
  );
  app.use('*', hostGuard(deps.allowedHosts));
  app.use('*', originGuard());

  app.get('/console.css', (c) => {
    c.header('content-type', 'text/css; charset=utf-8');
    return c.body(CONSOLE_CSS);
  });
  app.get('/', (c) => c.redirect('/keys', 303));
  registerAuth(app, core);

  for (const path of ['/keys', '/keys/*', '/clusters', '/rotation', '/audit', '/status']) {
    app.use(path, sessionGuard(core));
    app.use(path, csrfGuard());
  }
  registerKeyPages(app, core);
  registerFleetPages(app, core);
  registerRotationPages(app, core);
  registerAuditPages(app, core);
  registerStatusPage(app, core);

  app.notFound((c) => {
    c.status(404);
    return c.html(messagePage('Not found', 'There is no such console page.', undefined, '/keys'));
  });
  app.onError((err, c) => {
    const k = asKeygateError(err);
    if (k.httpStatus >= 500)
      deps.logger.error({ err: k.toLog(), path: c.req.path }, 'console request failed');
    return refusal(c, k.code, k.httpStatus >= 500 ? 'Something failed' : 'Refused', k.message);
  });
  return { app, core };
}
