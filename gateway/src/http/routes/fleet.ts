import { KeygateError } from '@keygate/shared/errors';
import { FLEET_USAGE_WINDOW_MS, fleetView } from '../../core/fleet/fleet-view.js';
import type { AppDeps } from '../deps.js';
import type { Ctx } from '../env.js';
import { runOperation } from '../operation.js';

/**
 * GET /api/v2/keygate/fleet (docs/api.md "Fleet"): every shim's latest report, with `stale`, and
 * the wraps, unwraps and rewraps per cluster and root-key version over the last hour. Needs
 * `fleet:read` under `'*'` (implied by `identities:admin`); audited as `fleet.read`.
 */
export async function handleFleet(c: Ctx, deps: AppDeps): Promise<Response> {
  const fleet = deps.fleet;
  if (fleet === undefined) throw new KeygateError('NOT_FOUND_ERR');
  const view = await runOperation(c, deps, { operation: 'fleet.read', global: true }, async () => {
    const now = deps.clock.now();
    const since = new Date(now.getTime() - FLEET_USAGE_WINDOW_MS);
    const [nodes, usage] = await Promise.all([fleet.store.nodes(), fleet.store.usage({ since })]);
    return { value: fleetView(nodes, usage, now, fleet.staleAfterMs, since) };
  });
  return c.json(view);
}
