import { randomUUID } from 'node:crypto';
import { HEADERS, PATHS } from '@keygate/shared/api';
import { KeygateError } from '@keygate/shared/errors';
import { requestLogger } from '@keygate/shared/log';
import { Hono, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { deadlineFrom } from './deadline.js';
import type { AppDeps } from './deps.js';
import type { Ctx, GatewayEnv } from './env.js';
import { toResponse } from './errors.js';
import { handleCreateKey } from './routes/create-key.js';
import { handleDestroyKey } from './routes/destroy-key.js';
import { handleSetKeyEnabled } from './routes/enable-disable-key.js';
import { handleFleet } from './routes/fleet.js';
import { handleGetKey } from './routes/get-key.js';
import { handleHealthz, handleMetrics, handleReadyz } from './routes/health.js';
import {
  handleCreateApiKey,
  handleCreateIdentity,
  handleDeleteIdentity,
  handleGetIdentity,
  handleListIdentities,
  handleReplaceIdentity,
  handleRevokeApiKey,
} from './routes/identities.js';
import { handleRotationStatus, handleVersionAction } from './routes/key-rotation.js';
import { handleKeyVersions } from './routes/key-versions.js';
import { handleListKeys } from './routes/list-keys.js';
import { handleRewrap } from './routes/rewrap.js';
import { handleRotateKey } from './routes/rotate-key.js';
import { handleJwks, handleToken, iamErrorResponse } from './routes/token.js';
import { handleUnwrap } from './routes/unwrap.js';
import { handleWrap } from './routes/wrap.js';

const CORRELATION_ID = /^[\x21-\x7e]{1,128}$/;
/** A request that took this long is logged at warn whether or not `log.requests` is on. */
const SLOW_REQUEST_MS = 1000;

/** The gateway's hono app: Key Protect shaped routes, health, metrics, one error shape. */
export function createApp(deps: AppDeps): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();

  app.use('*', async (c, next) => {
    const requestId = randomUUID();
    const corr = c.req.header(HEADERS.correlationId);
    const correlationId = corr !== undefined && CORRELATION_ID.test(corr) ? corr : undefined;
    const log = requestLogger(deps.logger, requestId, correlationId ? { correlationId } : {});
    c.set('requestId', requestId);
    c.set('correlationId', correlationId);
    c.set('deadlineAt', deadlineFrom(c.req.header(HEADERS.timeoutMs), deps.clock.now().getTime()));
    c.set('log', log);
    c.header(HEADERS.requestId, requestId);
    if (correlationId) c.header(HEADERS.correlationId, correlationId);
    const started = performance.now();
    await next();
    const ms = Math.round(performance.now() - started);
    if (ms >= SLOW_REQUEST_MS) {
      log.warn({ method: c.req.method, path: c.req.path, status: c.res.status, ms }, 'slow request');
    } else if (deps.logRequests) {
      log.info({ method: c.req.method, path: c.req.path, status: c.res.status, ms }, 'request');
    }
  });

  app.use(
    '/api/*',
    limitBody(deps.bodyLimitBytes, (c) => toResponse(c, new KeygateError('BODY_TOO_LARGE_ERR'))),
  );

  app.use(
    '/identity/*',
    limitBody(deps.bodyLimitBytes, (c) => iamErrorResponse(c, new KeygateError('BODY_TOO_LARGE_ERR'))),
  );

  // Token mode only; with the certificate allow-list these answer 404 (see docs/gateway.md).
  const tokens = deps.tokens;
  if (tokens !== undefined) {
    app.post(PATHS.token, (c) => handleToken(c, deps, tokens));
    app.get(PATHS.jwks, (c) => handleJwks(c, tokens));
  }

  app.get(PATHS.healthz, (c) => handleHealthz(c));
  app.get(PATHS.readyz, (c) => handleReadyz(c, deps));
  app.get(PATHS.metrics, (c) => handleMetrics(c, deps));

  app.post(PATHS.keys, (c) => handleCreateKey(c, deps));
  app.get(PATHS.keys, (c) => handleListKeys(c, deps));
  app.get(`${PATHS.keys}/:id`, (c) => handleGetKey(c, deps, c.req.param('id')));
  app.get(`${PATHS.keys}/:id/metadata`, (c) => handleGetKey(c, deps, c.req.param('id'), 'key.metadata'));
  app.get(`${PATHS.keys}/:id/versions`, (c) => handleKeyVersions(c, deps, c.req.param('id')));
  app.delete(`${PATHS.keys}/:id`, (c) => handleDestroyKey(c, deps, c.req.param('id')));
  app.post(`${PATHS.keys}/:id/actions/:action`, (c) =>
    keyAction(c, deps, c.req.param('id'), c.req.param('action')),
  );
  // Key Protect's older form: POST /api/v2/keys/:id?action=wrap
  app.post(`${PATHS.keys}/:id`, (c) => keyAction(c, deps, c.req.param('id'), c.req.query('action') ?? ''));

  app.get(`${PATHS.keygateKeys}/:id/rotation`, (c) => handleRotationStatus(c, deps, c.req.param('id')));
  for (const action of ['disable', 'enable'] as const) {
    app.post(`${PATHS.keys}/:id/versions/:version/actions/${action}`, (c) =>
      handleVersionAction(c, deps, c.req.param('id'), c.req.param('version'), action),
    );
  }

  app.get(PATHS.identities, (c) => handleListIdentities(c, deps));
  app.post(PATHS.identities, (c) => handleCreateIdentity(c, deps));
  app.get(`${PATHS.identities}/:name`, (c) => handleGetIdentity(c, deps, c.req.param('name')));
  app.put(`${PATHS.identities}/:name`, (c) => handleReplaceIdentity(c, deps, c.req.param('name')));
  app.delete(`${PATHS.identities}/:name`, (c) => handleDeleteIdentity(c, deps, c.req.param('name')));
  app.post(`${PATHS.identities}/:name/apikeys`, (c) => handleCreateApiKey(c, deps, c.req.param('name')));
  app.delete(`${PATHS.apiKeys}/:id`, (c) => handleRevokeApiKey(c, deps, c.req.param('id')));
  app.get(PATHS.fleet, (c) => handleFleet(c, deps));

  app.notFound((c) => toResponse(c, new KeygateError('NOT_FOUND_ERR')));
  app.onError((err, c) => toResponse(c, err));
  return app;
}

/**
 * hono's bodyLimit, with a fast path: a request with a Content-Length (and no Transfer-Encoding) is
 * judged by that header alone, exactly as bodyLimit does, but without touching `c.req.raw.body`,
 * which would build a WHATWG Request, AbortController and stream for every request (the handlers
 * then read Node's request directly; see body.ts). Other requests go through bodyLimit.
 */
function limitBody(maxSize: number, onError: (c: Ctx) => Response): MiddlewareHandler<GatewayEnv> {
  const slow = bodyLimit({ maxSize, onError: (c) => onError(c as Ctx) });
  return (c, next) => {
    const headers = (c.env as Partial<Ctx['env']> | undefined)?.incoming?.headers;
    const length = headers?.['content-length'];
    if (headers !== undefined && length !== undefined && headers['transfer-encoding'] === undefined) {
      return Number.parseInt(length, 10) > maxSize ? Promise.resolve(onError(c)) : next();
    }
    return slow(c, next);
  };
}

function keyAction(c: Ctx, deps: AppDeps, keyId: string, action: string): Promise<Response> {
  switch (action) {
    case 'wrap':
      return handleWrap(c, deps, keyId);
    case 'unwrap':
      return handleUnwrap(c, deps, keyId);
    case 'rewrap':
      return handleRewrap(c, deps, keyId);
    case 'rotate':
      return handleRotateKey(c, deps, keyId);
    case 'disable':
      return handleSetKeyEnabled(c, deps, keyId, false);
    case 'enable':
      return handleSetKeyEnabled(c, deps, keyId, true);
    default:
      return Promise.resolve(toResponse(c, new KeygateError('NOT_FOUND_ERR')));
  }
}
