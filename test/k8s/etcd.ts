/**
 * A real one-member etcd for the Kubernetes suite, on loopback ports and stopped by its own PID
 * (through processes.ts), and raw reads of what kube-apiserver stored in it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Service, startService } from '#devstack/processes.js';
import { freePort } from '../support/e2e-helpers.js';

export interface Etcd {
  readonly service: Service;
  readonly url: string;
}

/** Starts a one-member etcd on loopback ports and waits for /health. */
export async function startEtcd(bin: string, dir: string, name = 'etcd'): Promise<Etcd> {
  mkdirSync(dir, { recursive: true });
  const client = await freePort();
  const peer = await freePort();
  const url = `http://127.0.0.1:${client}`;
  const peerUrl = `http://127.0.0.1:${peer}`;
  const service = startService(
    name,
    bin,
    [
      '--name',
      'kg',
      '--data-dir',
      join(dir, 'data'),
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--listen-peer-urls',
      peerUrl,
      '--initial-advertise-peer-urls',
      peerUrl,
      '--initial-cluster',
      `kg=${peerUrl}`,
      '--unsafe-no-fsync=true',
      '--log-level=warn',
    ],
    { logFile: join(dir, 'etcd.log') },
  );
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (service.child.exitCode !== null) break;
    try {
      const res = await fetch(`${url}/health`);
      if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return { service, url };
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  await service.stop();
  throw new Error(`etcd did not become healthy; last lines:\n${service.lines.slice(-20).join('\n')}`);
}

/** Reads one raw value from etcd through its JSON gateway (keys and values are base64). */
export async function etcdGet(etcdUrl: string, key: string): Promise<Buffer | undefined> {
  const res = await fetch(`${etcdUrl}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({ key: Buffer.from(key).toString('base64') }),
  });
  if (!res.ok) throw new Error(`etcd range ${key}: HTTP ${res.status}`);
  const body = (await res.json()) as { kvs?: { value?: string }[] };
  const value = body.kvs?.[0]?.value;
  return value === undefined ? undefined : Buffer.from(value, 'base64');
}

/**
 * Writes every key under `prefix` (default: all of kube-apiserver's `/registry/`) with its raw value to
 * `file`, one JSON object per line ({ key, size, value: base64 }): what a failed run keeps for diagnosis.
 * Values are what etcd holds, encrypted where kube-apiserver encrypts. Returns the number of keys.
 */
export async function dumpEtcd(etcdUrl: string, file: string, prefix = '/registry/'): Promise<number> {
  const end = Buffer.from(prefix);
  end[end.length - 1] = (end[end.length - 1] ?? 0) + 1;
  const res = await fetch(`${etcdUrl}/v3/kv/range`, {
    method: 'POST',
    body: JSON.stringify({
      key: Buffer.from(prefix).toString('base64'),
      range_end: end.toString('base64'),
    }),
  });
  if (!res.ok) throw new Error(`etcd range ${prefix}: HTTP ${res.status}`);
  const body = (await res.json()) as { kvs?: { key?: string; value?: string }[] };
  const lines = (body.kvs ?? []).map((kv) => {
    const value = Buffer.from(kv.value ?? '', 'base64');
    return JSON.stringify({
      key: Buffer.from(kv.key ?? '', 'base64').toString('utf8'),
      size: value.length,
      value: kv.value ?? '',
    });
  });
  writeFileSync(file, lines.length > 0 ? `${lines.join('\n')}\n` : '');
  return lines.length;
}
