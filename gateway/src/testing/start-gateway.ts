import { loadGatewayConfig } from '../config.js';
import { type GatewayDeps, type RunningGateway, startGateway } from '../main.js';

/** Reads and validates `file`, then starts a gateway from it, as `keygate-gateway serve` does. */
export function startGatewayFromFile(file: string, deps: GatewayDeps = {}): Promise<RunningGateway> {
  return startGateway(loadGatewayConfig(file), { ...deps, configFile: file });
}
