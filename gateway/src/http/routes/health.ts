import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';

/** GET /healthz: the process answers (shallow). */
export function handleHealthz(c: Ctx): Response {
  return c.json({ status: 'ok' });
}

/** GET /readyz: 200 when the HSM and the store are usable, else 503 with the reasons. */
export function handleReadyz(c: Ctx, deps: AppDeps): Response {
  const r = deps.readiness();
  const ready = r.hsm.ready && r.store.ready;
  return c.json({ status: ready ? 'ready' : 'not ready', hsm: r.hsm, store: r.store }, ready ? 200 : 503);
}

/** GET /metrics: Prometheus text. */
export async function handleMetrics(c: Ctx, deps: AppDeps): Promise<Response> {
  const text = await deps.metrics.registry.metrics();
  return c.text(text, 200, { 'content-type': deps.metrics.registry.contentType });
}
