/** Starts the gateway and shim CLIs as child processes and waits until each says it is up. */
import { KmsClient } from '@keygate/shim';
import { GATEWAY_CLI, SHIM_CLI } from './paths.js';
import type { PreparedStack } from './prepare-stack.js';
import { type Service, startService } from './processes.js';

/** Starts a CLI of ours and resolves with its JSON start line; kills it when that line never comes. */
async function startCli(
  name: string,
  args: string[],
  startLine: RegExp,
  opts: { env?: Record<string, string>; echo?: (l: string) => void },
): Promise<{ service: Service; start: Record<string, unknown> }> {
  const service = startService(name, process.execPath, args, {
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.echo ? { echo: opts.echo } : {}),
  });
  try {
    const line = await service.waitFor(startLine, 60_000);
    return { service, start: JSON.parse(line) as Record<string, unknown> };
  } catch (err) {
    await service.kill();
    throw err;
  }
}

/** Starts the gateway CLI on a prepared stack and returns it with its URL. */
export async function startGatewayProcess(
  p: PreparedStack,
  opts: { echo?: (l: string) => void; name?: string; config?: string } = {},
): Promise<{ service: Service; url: string; consoleUrl?: string | undefined }> {
  const { service, start } = await startCli(
    opts.name ?? 'gateway',
    [GATEWAY_CLI, 'serve', '--config', opts.config ?? p.gatewayConfig],
    /"msg":"gateway listening"/,
    { env: p.env, ...(opts.echo ? { echo: opts.echo } : {}) },
  );
  return {
    service,
    url: start.url as string,
    consoleUrl: typeof start.console === 'string' ? start.console : undefined,
  };
}

/** Starts the shim CLI with `configFile`; resolves once it has printed its start line. */
export async function startShimProcess(
  configFile: string,
  opts: { echo?: (l: string) => void; name?: string; env?: Record<string, string> } = {},
): Promise<{ service: Service; healthPort: number }> {
  const { service, start } = await startCli(
    opts.name ?? 'shim',
    [SHIM_CLI, 'serve', '--config', configFile],
    /"msg":"keygate shim started"/,
    { ...(opts.echo ? { echo: opts.echo } : {}), ...(opts.env ? { env: opts.env } : {}) },
  );
  return { service, healthPort: start.healthPort as number };
}

/** Polls Status until healthz is "ok" and returns the key_id. */
export async function waitHealthy(socket: string, timeoutMs = 30_000): Promise<string> {
  const client = new KmsClient(socket);
  const deadline = Date.now() + timeoutMs;
  let last = '';
  try {
    while (Date.now() < deadline) {
      try {
        const s = await client.status();
        if (s.healthz === 'ok') return s.key_id;
        last = s.healthz;
      } catch (err) {
        last = String(err);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    client.close();
  }
  throw new Error(`shim on ${socket} not healthy within ${timeoutMs} ms: ${last}`);
}
