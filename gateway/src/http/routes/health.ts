import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';

/** GET /healthz: the process answers (shallow). */
export function handleHealthz(c: Ctx): Response {
  return c.json({ status: 'ok' });
}

/** GET /readyz: 200 when the HSM, the store and the audit log are usable, else 503 with the reasons. */
export function handleReadyz(c: Ctx, deps: AppDeps): Response {
  const r = deps.readiness();
  const audit = auditReadiness(deps);
  const ready = r.hsm.ready && r.store.ready && audit.ready;
  return c.json(
    { status: ready ? 'ready' : 'not ready', hsm: r.hsm, store: r.store, audit },
    ready ? 200 : 503,
  );
}

function auditReadiness(deps: AppDeps): { ready: boolean; reasons: string[] } {
  try {
    deps.audit.assertAvailable();
    return { ready: true, reasons: [] };
  } catch {
    return { ready: false, reasons: ['the audit log cannot be written (key operations answer 503)'] };
  }
}

/** GET /metrics: Prometheus text. */
export async function handleMetrics(c: Ctx, deps: AppDeps): Promise<Response> {
  const text = await deps.metrics.registry.metrics();
  return c.text(text, 200, { 'content-type': deps.metrics.registry.contentType });
}
