import type { IamError } from '@keygate/shared/api';
import { asKeygateError, type ErrorCode, errorKind, KeygateError } from '@keygate/shared/errors';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { AuditEvent, AuditOutcome } from '../../core/audit/audit-event.js';
import type { PeerCertificate } from '../../core/auth/principal.js';
import type { AppDeps, TokenService } from '../deps.js';
import type { Ctx } from '../env.js';
import { logError, setRetryAfter } from '../errors.js';
import { peerCertificate } from '../peer-cert.js';
import { rateLimited, refuse } from '../refusals.js';

/**
 * IAM's own error codes where it has an equivalent; clients should act on `keygateCode`.
 * Anything not listed answers BXNIM0400E with our code and status.
 */
const IAM_CODES: Partial<Record<ErrorCode, string>> = {
  AUTH_APIKEY_INVALID: 'BXNIM0415E',
  AUTH_GRANT_TYPE_INVALID: 'BXNIM0109E',
  FORBIDDEN_ERR: 'BXNIM0513E',
  AUTH_CERT_REQUIRED: 'BXNIM0513E',
};

/** IAM's error body with the catalogue's fixed text and status. */
export function iamErrorResponse(c: Ctx, err: unknown): Response {
  const k: KeygateError = asKeygateError(err);
  logError(c, k, 'token request');
  setRetryAfter(c, k);
  const body: IamError = {
    errorCode: IAM_CODES[k.code] ?? 'BXNIM0400E',
    errorMessage: k.message,
    keygateCode: k.code,
    context: { requestId: c.get('requestId') },
  };
  return c.json(body, k.httpStatus as ContentfulStatusCode);
}

/**
 * POST /identity/token: API key (form body) to a certificate-bound access token. Audited as
 * `token.issue` (with the certificate identity and the subject, never the key or the token);
 * fail closed: the token is answered only after its record is durable. Rate limited per client
 * certificate (before the API key is looked at) and per identity (`limits.tokenPer*`: 429).
 */
export async function handleToken(c: Ctx, deps: AppDeps, tokens: TokenService): Promise<Response> {
  const started = performance.now();
  let cert: PeerCertificate | undefined;
  let subject: string | undefined;
  const seconds = () => (performance.now() - started) / 1000;
  const event = (outcome: AuditOutcome, errorCode?: ErrorCode): AuditEvent => ({
    time: deps.clock.now().toISOString(),
    requestId: c.get('requestId'),
    correlationId: c.get('correlationId'),
    certIdentity: cert?.identity,
    subject,
    operation: 'token.issue',
    outcome,
    errorCode,
    latencyMs: Math.round((performance.now() - started) * 1000) / 1000,
  });
  let issued: Awaited<ReturnType<TokenService['issue']>>;
  try {
    cert = peerCertificate(c);
    const l = deps.limits;
    const perCert = l.tokenPerCertificate.take(cert.thumbprint, deps.clock.now().getTime());
    if (perCert > 0) throw rateLimited(deps, 'token-per-certificate', perCert);
    const type = c.req.header('content-type');
    if (type !== undefined && !/^application\/x-www-form-urlencoded\b/i.test(type)) {
      throw new KeygateError('UNSUPPORTED_MEDIA_TYPE_ERR');
    }
    const form = new URLSearchParams(await c.req.text());
    deps.audit.assertAvailable();
    issued = await tokens.issue({
      grantType: form.get('grant_type') ?? undefined,
      apikey: form.get('apikey') ?? undefined,
      cert,
    });
    subject = issued.subject;
    // The token is signed but not handed out: one identity's many certificates share this budget.
    const perIdentity = l.tokenPerIdentity.take(subject, deps.clock.now().getTime());
    if (perIdentity > 0) throw rateLimited(deps, 'token-per-identity', perIdentity);
  } catch (err) {
    const k = asKeygateError(err);
    const detailSubject = k.detail?.subject;
    if (typeof detailSubject === 'string') subject = detailSubject;
    const outcome: AuditOutcome = errorKind(k.code) === 'auth' ? 'denied' : 'failure';
    const answer = await refuse(c, deps, k, { cert, subject }, event(outcome, k.code));
    deps.metrics.observe('token.issue', outcome, answer.code, seconds());
    return iamErrorResponse(c, answer);
  }
  try {
    await deps.audit.append(event('success'));
  } catch (err) {
    deps.metrics.observe('token.issue', 'failure', 'AUDIT_UNAVAILABLE', seconds());
    return iamErrorResponse(c, new KeygateError('AUDIT_UNAVAILABLE', { cause: err }));
  }
  deps.metrics.observe('token.issue', 'success', 'OK', seconds());
  c.header('cache-control', 'no-store');
  return c.json(issued.response);
}

/** GET /.well-known/jwks.json: the public keys that verify access tokens. */
export function handleJwks(c: Ctx, tokens: TokenService): Response {
  c.header('cache-control', 'public, max-age=300');
  return c.json(tokens.jwks());
}
