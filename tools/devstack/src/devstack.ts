/**
 * The development stack `npm start` runs (a gateway and a shim on one machine), also started by the
 * e2e tests and the benchmarks.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encryptionConfigV1, encryptionConfigV2 } from './encryption-config.js';
import { startGatewayProcess, startShimProcess, waitHealthy } from './launch.js';
import { type DevStackOptions, type PreparedStack, prepareStack } from './prepare-stack.js';
import type { Service } from './processes.js';
import { writeShimConfig } from './shim-config.js';

/** What `npm start` writes to `<home>/stack.json` (all paths absolute). */
export interface StackInfo {
  readonly gatewayUrl: string;
  readonly socket: string;
  readonly healthzUrl: string;
  readonly caFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  readonly apiKeyFile: string;
  /** The web console (docs/console.md), when the stack was started with a console port. */
  readonly consoleUrl?: string | undefined;
  /** The operator identity `ops-admin` (keys:admin and keys:read on the dev instance, fleet:read: the console). */
  readonly adminApiKeyFile: string;
  readonly adminCertFile: string;
  readonly adminKeyFile: string;
  readonly instanceId: string;
  readonly crkId: string;
  readonly encryptionConfig: string;
  readonly encryptionConfigV1: string;
  readonly gatewayConfig: string;
  readonly shimConfig: string;
  readonly hsm: 'softhsm2' | 'software';
}

/** A running development stack. */
export interface DevStack {
  readonly info: StackInfo;
  readonly prepared: PreparedStack;
  readonly gateway: Service;
  readonly shim: Service;
  stop(): Promise<void>;
}

/** The dev stack shim's NODE_NAME (its node in `keygate-gateway fleet`). */
export const DEV_NODE_NAME = 'dev-master-1';

/** Prepares and starts gateway and shim, waits until the shim is healthy, writes stack.json. */
export async function startDevStack(opts: DevStackOptions): Promise<DevStack> {
  const p = await prepareStack(opts);
  const echo = opts.echo;
  const gw = await startGatewayProcess(p, echo ? { echo: (l) => echo(l, 'gateway') } : {});
  const socket = join(p.home, 'kms.sock');
  const shimConfig = join(p.home, 'kmsplugin-config.yaml');
  try {
    writeShimConfig(p, shimConfig, {
      gatewayUrls: [gw.url],
      socket,
      healthzPort: opts.healthzPort ?? 20358,
      newDek: opts.newDek ?? false,
      refreshSeconds: opts.keyIdRefreshSeconds ?? 60,
    });
    // The dev cluster's one master, as the fleet view shows it (docs/fleet.md).
    const shim = await startShimProcess(shimConfig, {
      env: { NODE_NAME: DEV_NODE_NAME },
      ...(echo ? { echo: (l) => echo(l, 'shim') } : {}),
    });
    try {
      await waitHealthy(socket);
    } catch (err) {
      // A shim left running would keep the test runner (or npm start) alive forever.
      await shim.service.stop();
      throw err;
    }
    const encryptionConfig = join(p.home, 'encryption-config.yaml');
    const encryptionConfigV1Path = join(p.home, 'encryption-config-v1.yaml');
    writeFileSync(encryptionConfig, encryptionConfigV2({ socket }));
    writeFileSync(encryptionConfigV1Path, encryptionConfigV1({ socket }));
    const info: StackInfo = {
      gatewayUrl: gw.url,
      consoleUrl: gw.consoleUrl,
      socket,
      healthzUrl: `http://127.0.0.1:${shim.healthPort}/healthz`,
      caFile: p.pki.caFile,
      clientCertFile: p.pki.clientCertFile,
      clientKeyFile: p.pki.clientKeyFile,
      apiKeyFile: p.apiKeyFile,
      adminApiKeyFile: p.adminApiKeyFile,
      adminCertFile: p.pki.adminCertFile,
      adminKeyFile: p.pki.adminKeyFile,
      instanceId: p.instanceId,
      crkId: p.crkId,
      encryptionConfig,
      encryptionConfigV1: encryptionConfigV1Path,
      gatewayConfig: p.gatewayConfig,
      shimConfig,
      hsm: p.hsm,
    };
    writeFileSync(join(p.home, 'stack.json'), `${JSON.stringify(info, null, 2)}\n`);
    return {
      info,
      prepared: p,
      gateway: gw.service,
      shim: shim.service,
      async stop() {
        await shim.service.stop();
        await gw.service.stop();
      },
    };
  } catch (err) {
    await gw.service.stop();
    throw err;
  }
}
