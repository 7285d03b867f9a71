import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { keyTemplate } from '@keygate/gateway/testing/softhsm';
import pkcs11js from 'pkcs11js';
import { createSoftHsmToken } from '#devstack/softhsm.js';
import { type Proc, spawnProc } from './procs.js';
import { BENCH_HOME, REPO_ROOT } from './stack.js';

/**
 * The Go KMS plugin peer (bench/peers/kms-plugin, K1): built once per source version into a cache
 * outside the repository, given its own SoftHSM2 token and AES-256 key, started and stopped like
 * the shim. It does one AES-GCM encrypt or decrypt in SoftHSM2 per request, as the upstream mock
 * plugin of k8s.io/kms does.
 */
export const PEER_SRC = join(REPO_ROOT, 'bench/peers/kms-plugin');
export const PEER_TOKEN = 'keygate-peer';
export const PEER_KEY_LABEL = 'kms-peer-key';

/** Hash of go.mod, go.sum and the Go sources (the plugin's and load/'s): names the cached build. */
export function peerSourceHash(dir = PEER_SRC): string {
  const h = createHash('sha256');
  const files = [...readdirSync(dir), ...readdirSync(join(dir, 'load')).map((f) => `load/${f}`)]
    .filter((f) => f === 'go.mod' || f === 'go.sum' || f.endsWith('.go'))
    .sort();
  for (const f of files) {
    h.update(`${f}\0`);
    h.update(readFileSync(join(dir, f)));
  }
  return h.digest('hex').slice(0, 16);
}

export interface PeerBuild {
  /** The plugin. */
  readonly path: string;
  /** The Go load client (load/). */
  readonly loadPath: string;
  readonly built: boolean;
  readonly buildMs: number;
}

/** The peer binaries: reused from ~/.cache/keygate-bench when their sources did not change, else built. */
export function peerBinary(): PeerBuild {
  const cache = process.env.KEYGATE_BENCH_CACHE ?? join(homedir(), '.cache/keygate-bench');
  const dir = join(cache, `peer-${peerSourceHash()}`);
  const bin = join(dir, 'kms-plugin');
  const load = join(dir, 'kms-load');
  if (existsSync(bin) && existsSync(load)) return { path: bin, loadPath: load, built: false, buildMs: 0 };
  mkdirSync(dir, { recursive: true });
  const t0 = performance.now();
  for (const [pkg, out] of [
    ['.', bin],
    ['./load', load],
  ] as const) {
    const tmp = `${out}.tmp-${process.pid}`;
    // CGO: crypto11 loads the PKCS#11 module through cgo (dlopen).
    execFileSync('go', ['build', '-trimpath', '-o', tmp, pkg], {
      cwd: PEER_SRC,
      env: { ...process.env, CGO_ENABLED: '1' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    renameSync(tmp, out);
  }
  return { path: bin, loadPath: load, built: true, buildMs: performance.now() - t0 };
}

export interface PeerHsm {
  readonly conf: string;
  readonly module: string;
  readonly pinFile: string;
}

/**
 * A fresh SoftHSM2 token store for the peer (its own softhsm2.conf) holding one AES-256 key,
 * sensitive and not extractable, labelled PEER_KEY_LABEL.
 */
export function preparePeerHsm(): PeerHsm {
  const dir = join(BENCH_HOME, 'peer-hsm');
  rmSync(dir, { recursive: true, force: true });
  const pin = '4321';
  const token = createSoftHsmToken(dir, PEER_TOKEN, pin, '8765');
  const pinFile = join(dir, 'pin');
  writeFileSync(pinFile, `${pin}\n`, { mode: 0o600 });
  const before = process.env.SOFTHSM2_CONF;
  process.env.SOFTHSM2_CONF = token.conf;
  const lib = new pkcs11js.PKCS11();
  try {
    lib.load(token.module);
    lib.C_Initialize();
    const slot = lib.C_GetSlotList(true).find((s) => lib.C_GetTokenInfo(s).label.trim() === PEER_TOKEN);
    if (slot === undefined) throw new Error(`token ${PEER_TOKEN} not found`);
    const s = lib.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
    lib.C_Login(s, pkcs11js.CKU_USER, pin);
    // The same attributes as keygate's own root keys (AES-256, sensitive, not extractable).
    lib.C_GenerateKey(s, { mechanism: pkcs11js.CKM_AES_KEY_GEN }, keyTemplate(PEER_KEY_LABEL, false));
    lib.C_Logout(s);
    lib.C_CloseSession(s);
    lib.C_Finalize();
  } finally {
    lib.close();
    if (before === undefined) delete process.env.SOFTHSM2_CONF;
    else process.env.SOFTHSM2_CONF = before;
  }
  return { conf: token.conf, module: token.module, pinFile };
}

export interface RunningPeer {
  readonly proc: Proc;
  readonly socket: string;
  readonly keyId: string;
}

/** Spawns the peer (not waiting for it): its socket file appears once it listens. */
export function startPeerProc(bin: string, hsm: PeerHsm, name: string): { proc: Proc; socket: string } {
  const dir = join(BENCH_HOME, 'sock');
  mkdirSync(dir, { recursive: true });
  const socket = join(dir, `peer-${name}.sock`);
  rmSync(socket, { force: true });
  const proc = spawnProc(
    `peer-${name}`,
    [
      `--listen-addr=${socket}`,
      `--module=${hsm.module}`,
      `--token-label=${PEER_TOKEN}`,
      `--pin-file=${hsm.pinFile}`,
      `--key-label=${PEER_KEY_LABEL}`,
    ],
    {
      command: bin,
      env: { SOFTHSM2_CONF: hsm.conf },
      logFile: join(BENCH_HOME, 'logs', `peer-${name}.log`),
    },
  );
  return { proc, socket };
}

export async function startPeer(bin: string, hsm: PeerHsm, name: string): Promise<RunningPeer> {
  const { proc, socket } = startPeerProc(bin, hsm, name);
  await proc.waitForLine(/"msg":"kms peer listening"/, 30_000);
  return { proc, socket, keyId: PEER_KEY_LABEL };
}
