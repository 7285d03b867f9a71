import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KmsClient } from '@keygate/shim';
import { SHIM_CLI } from '#devstack/paths.js';
import { type PeerHsm, startPeerProc } from './peer.js';
import { spawnProc } from './procs.js';
import { BENCH_HOME, profileArgs, REPO_ROOT } from './stack.js';
import { type StartStepTime, startProfile } from './start-profile.js';

/** K1: restart → first Decrypt of a ciphertext made before the restart. */
export interface Sealed {
  readonly ciphertext: Buffer;
  readonly keyId: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls until a v2 Decrypt of `sealed` on `socket` succeeds; returns the epoch ms it answered.
 * Waits for the socket file first and uses a fresh client per try (grpc-js backs off for a second
 * after a failed connect, which would hide the process's own start time).
 */
export async function firstDecrypt(socket: string, sealed: Sealed, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no socket';
  while (Date.now() < deadline) {
    if (existsSync(socket)) {
      const c = new KmsClient(socket, 2000);
      try {
        await c.decrypt(sealed.ciphertext, sealed.keyId, 'k1');
        return Date.now();
      } catch (err) {
        last = err instanceof Error ? err.message : String(err);
      } finally {
        c.close();
      }
    }
    await sleep(1);
  }
  throw new Error(`no Decrypt on ${socket} within ${timeoutMs} ms: ${last}`);
}

export interface ShimRestart {
  readonly ms: number;
  readonly profile: StartStepTime[];
}

/** What to start (tools/start-ab.ts compares them): the CLI file (default SHIM_CLI) and more env. */
export interface RestartOptions {
  readonly cli?: string;
  readonly env?: Record<string, string>;
  /** Another node binary for the shim (the gateway keeps the bench's: its pkcs11js is built for it). */
  readonly node?: string;
}

/**
 * Spawns the shim on `config` (the gateway up), with the start probe preloaded, and times spawn →
 * first Decrypt of `sealed`; then stops it. `nodeOptions` as the static pod sets NODE_OPTIONS.
 */
export async function restartShim(
  name: string,
  config: string,
  socket: string,
  sealed: Sealed,
  nodeOptions: string,
  opts: RestartOptions = {},
): Promise<ShimRestart> {
  const probe = join(REPO_ROOT, 'bench/dist/tools/start-probe.js');
  const logFile = join(BENCH_HOME, 'logs', `shim-${name}-restart.log`);
  const spawnedAt = Date.now();
  const nodeArgs = [`--import=${probe}`, ...profileArgs('shim')];
  const args = [opts.cli ?? SHIM_CLI, 'serve', '--config', config];
  const proc = spawnProc(`shim-${name}-restart`, opts.node ? [...nodeArgs, ...args] : args, {
    env: { ...opts.env, NODE_OPTIONS: nodeOptions },
    logFile,
    // BENCH_PROFILE=shim: a --cpu-prof of each restart too (where the start time goes).
    ...(opts.node ? { command: opts.node } : { nodeArgs }),
  });
  try {
    const at = await firstDecrypt(socket, sealed);
    return { ms: at - spawnedAt, profile: startProfile(spawnedAt, at, readFileSync(logFile, 'utf8')) };
  } finally {
    await proc.stop();
  }
}

/** The same for the Go peer: spawn → first Decrypt, then stop. */
export async function restartPeer(bin: string, hsm: PeerHsm, name: string, sealed: Sealed): Promise<number> {
  const spawnedAt = Date.now();
  const { proc, socket } = startPeerProc(bin, hsm, `${name}-restart`);
  try {
    const at = await firstDecrypt(socket, sealed);
    return at - spawnedAt;
  } finally {
    await proc.stop();
  }
}
