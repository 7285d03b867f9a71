/**
 * keygate as a production cluster runs it: three control-plane nodes, each with its own kube-apiserver and
 * its own shim (own socket, health port, client certificate and node name), one etcd, and the gateway as
 * three replicas on PostgreSQL (one gateway when PostgreSQL is not installed). The cluster is onboarded
 * with `keygate-gateway clusters add`; masters 2 and 3 get their own certificates with `pki client`.
 * Run with `npm run test:k8s` (scripts/test-k8s.mjs), on every release of the matrix.
 *
 * Cases, each printing its figures: Secrets written through each apiserver read through every other;
 * a root key rotation the masters see at different times; a shim killed and restarted under writes;
 * the gateway down for 4 minutes; a cold start of the whole control plane.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { findPostgresBin, startTestPostgres, type TestPostgres } from '@keygate/gateway/testing/postgres';
import { KmsClient } from '@keygate/shim';
import { parse, stringify } from 'yaml';
import { encryptionConfigV2 } from '#devstack/encryption-config.js';
import { startGatewayProcess, startShimProcess, waitHealthy } from '#devstack/launch.js';
import { metricSum } from '#devstack/metrics.js';
import { GATEWAY_CLI } from '#devstack/paths.js';
import { type PreparedStack, prepareStack } from '#devstack/prepare-stack.js';
import type { Service } from '#devstack/processes.js';
import { findSoftHsmModule } from '#devstack/softhsm.js';
import { freePort } from '../support/e2e-helpers.js';
import { haGatewayConfig } from '../support/ha-stack.js';
import { type Apiserver, type ApiserverOptions, apiserverFiles, startApiserver } from './apiserver.js';
import { binaries, requireBinaries, versions } from './binaries.js';
import { type Etcd, startEtcd } from './etcd.js';
import { KubeError } from './kube-client.js';
import {
  log,
  mtlsGet,
  PROVIDER_V2,
  pool,
  SecretBook,
  type SecretObject,
  SIZES,
  SuiteRun,
  secretPath,
  seedOf,
  shimDekOf,
  since,
} from './suite.js';

const V = versions();
const BINS = binaries(V);
const CLUSTER = 'ha';
const MASTERS = 3;
const SECRETS = Number(process.env.KEYGATE_K8S_SECRETS ?? 200);
/** How long the gateway is down (the issue's 4 minutes; longer than upstream's 3-minute write window). */
const GATEWAY_OUTAGE_MS = Number(process.env.KEYGATE_K8S_HA_OUTAGE_SECONDS ?? 240) * 1000;
/** The shims' key_id refresh (KEYGATE.KEY_ID_REFRESH_SECONDS): how soon a master sees a rotation. */
const REFRESH_SECONDS = 2;

interface Gateway {
  readonly name: string;
  readonly config: string;
  readonly url: string;
  service?: Service | undefined;
}

/** One control-plane node: its shim and its kube-apiserver (started, and restarted, by the cases). */
class Master {
  shim!: Service;
  healthPort = 0;
  api!: Apiserver;
  constructor(
    readonly name: string,
    readonly socket: string,
    readonly shimConfig: string,
    readonly options: ApiserverOptions,
    readonly kms: KmsClient,
  ) {}
}

/** A short text for a failed call (HTTP status and message, or the error). */
const why = (err: unknown): string =>
  err instanceof KubeError
    ? `HTTP ${err.status} ${err.message.replace(/^.*?HTTP \d+: /, '').slice(0, 100)}`
    : String(err).slice(0, 120);

describe(`three control-plane nodes on kube-apiserver ${V.k8s} and etcd ${V.etcd}`, {
  skip: findSoftHsmModule() ? false : 'SoftHSM2 not installed',
}, () => {
  const work = mkdtempSync(join(tmpdir(), 'kg-k8s-ha-'));
  const logs = join(work, 'logs');
  const echoTo =
    (name: string) =>
    (line: string): void =>
      appendFileSync(join(logs, `${name}.log`), `${line}\n`);
  const run = new SuiteRun(work);
  let prepared: PreparedStack;
  let pg: TestPostgres | undefined;
  let etcd: Etcd;
  const gateways: Gateway[] = [];
  const masters: Master[] = [];
  const book = new SecretBook();
  const summary: string[] = [];

  const rawV2 = (name: string) => book.rawV2(etcd.url, name);
  const other = (m: Master, k = 1): Master => masters[(masters.indexOf(m) + k) % masters.length] as Master;
  const shimMetrics = async (m: Master) => (await fetch(`http://127.0.0.1:${m.healthPort}/metrics`)).text();
  /** A gateway operation summed over every running replica (each counts its own). */
  async function gatewayOps(operation: string): Promise<number> {
    let n = 0;
    for (const g of gateways) {
      if (!g.service) continue;
      const text = await mtlsGet(`${g.url}/metrics`, {
        ca: prepared.pki.caFile,
        cert: prepared.pki.clientCertFile,
        key: prepared.pki.clientKeyFile,
      });
      n += metricSum(text, 'keygate_gateway_operations_total', { operation });
    }
    return n;
  }
  const kmsProviders = async (m: Master): Promise<number> => {
    try {
      return (await m.api.api.request('GET', '/healthz/kms-providers')).status;
    } catch {
      return 0;
    }
  };
  /** Runs `npx keygate-gateway ARGS`; returns its output when it exits with one of `ok` (else throws). */
  const gatewayRun = (args: string[], ok: readonly number[]): string => {
    const r = spawnSync(process.execPath, [GATEWAY_CLI, ...args], {
      encoding: 'utf8',
      env: { ...process.env, ...prepared.env },
    });
    if (r.status === null || !ok.includes(r.status))
      throw new Error(
        `keygate-gateway ${args.slice(0, 2).join(' ')}: exit ${r.status}: ${r.stderr.slice(-400)}`,
      );
    return r.stdout;
  };
  const gatewayCli = (...args: string[]): string => gatewayRun(args, [0]);

  async function startGateway(g: Gateway, generation: number): Promise<void> {
    const name = `${g.name}-${generation}`;
    const s = await startGatewayProcess(prepared, { name, config: g.config, echo: echoTo(name) });
    g.service = s.service;
  }

  async function startShim(m: Master, generation: number): Promise<void> {
    const name = `shim-${m.name}-${generation}`;
    const s = await startShimProcess(m.shimConfig, {
      name,
      env: { NODE_NAME: m.name },
      echo: echoTo(name),
    });
    m.shim = s.service;
    m.healthPort = s.healthPort;
  }

  async function startMasterApiserver(m: Master, generation: number): Promise<void> {
    m.api = await startApiserver({
      ...m.options,
      name: `kube-apiserver-${m.name}-${generation}`,
      logFile: join(logs, `kube-apiserver-${m.name}-${generation}.log`),
    });
  }

  before(async () => {
    requireBinaries(BINS);
    mkdirSync(logs);
    log(`work folder ${work}`);
    log(`kube-apiserver ${BINS.kubeApiserver}`);
    prepared = await prepareStack({ home: join(work, 'stack'), gatewayPort: 0, hsm: 'softhsm2' });

    // The gateway: three replicas on one PostgreSQL where it is installed (as production runs it), else one.
    if (findPostgresBin()) {
      pg = await startTestPostgres();
      const names = ['gateway-a', 'gateway-b', 'gateway-c'];
      const ports = [await freePort(), await freePort(), await freePort()];
      names.forEach((name, i) => {
        const port = ports[i] as number;
        const config = haGatewayConfig(prepared, pg as TestPostgres, {
          port,
          replica: name.slice(-1),
          home: work,
        });
        gateways.push({ name, config, url: `https://127.0.0.1:${port}` });
      });
      // The stack's root key and identities move into PostgreSQL, as an operator moves them.
      gatewayCli(
        'store',
        'migrate-from-file',
        '--config',
        (gateways[0] as Gateway).config,
        '--from',
        prepared.gatewayConfig,
      );
    } else {
      const port = await freePort();
      const config = join(work, 'gateway.yaml');
      writeFileSync(
        config,
        readFileSync(prepared.gatewayConfig, 'utf8').replace(/^ {2}port: 0$/m, `  port: ${port}`),
      );
      gateways.push({ name: 'gateway', config, url: `https://127.0.0.1:${port}` });
    }
    await Promise.all(gateways.map((g) => startGateway(g, 1)));
    const adminConfig = (gateways[0] as Gateway).config;

    // Onboarding in one command, as docs/clusters.md: identity, API key, certificate and the bundle.
    const bundle = join(work, 'bundle');
    gatewayCli(
      'clusters',
      'add',
      CLUSTER,
      '--config',
      adminConfig,
      '--instance',
      prepared.instanceId,
      '--key',
      prepared.crkId,
      '--gateway-url',
      gateways.map((g) => g.url).join(','),
      '--out',
      bundle,
    );
    const caDir = join(work, 'stack', 'pki', 'ca');
    etcd = await startEtcd(BINS.etcd, join(work, 'etcd'));
    for (let i = 0; i < MASTERS; i++) {
      const name = `master-${i + 1}`;
      const dir = join(work, name);
      mkdirSync(dir);
      // Master 1 uses the bundle's certificate; the others get their own for the same cluster identity.
      let cert = join(bundle, 'client.pem');
      let key = join(bundle, 'client-key.pem');
      if (i > 0) {
        gatewayCli('pki', 'client', '--ca', caDir, '--out', join(dir, 'pki'), '--cluster', CLUSTER);
        cert = join(dir, 'pki', 'client.pem');
        key = join(dir, 'pki', 'client-key.pem');
      }
      // The bundle's kmsplugin-config.yaml, with this node's paths; each master prefers another replica.
      const doc = parse(
        readFileSync(join(bundle, 'kmsplugin-config.yaml'), 'utf8').replaceAll(
          '/etc/keygate/shim/',
          `${bundle}/`,
        ),
      ) as Record<string, Record<string, unknown>>;
      const urls = gateways.map((_, k) => (gateways[(i + k) % gateways.length] as Gateway).url);
      const socket = join(dir, 'kms.sock');
      Object.assign(doc.SERVER_CONFIG as object, {
        UNIX_SOCKET_PATH: socket,
        HEALTHZ_PORT: '0',
        RESTART_DELAY_IN_SECONDS: '1',
        TOKEN_URL: `${urls[0]}/identity/token`,
      });
      Object.assign(doc.KP_CONFIG as object, { URL: urls[0] });
      Object.assign(doc.KEYGATE as object, {
        CLIENT_CERT_FILE: cert,
        CLIENT_KEY_FILE: key,
        GATEWAY_URLS: urls.slice(1),
        KEY_ID_REFRESH_SECONDS: String(REFRESH_SECONDS),
      });
      const shimConfig = join(dir, 'kmsplugin-config.yaml');
      writeFileSync(shimConfig, stringify(doc), { mode: 0o600 });
      const encryptionConfig = join(dir, 'encryption-config.yaml');
      writeFileSync(encryptionConfig, encryptionConfigV2({ socket, name: PROVIDER_V2, timeout: '3s' }));
      const options: ApiserverOptions = {
        bin: BINS.kubeApiserver,
        files: await apiserverFiles(join(dir, 'apiserver')),
        etcdUrl: etcd.url,
        encryptionConfig,
        port: await freePort(),
        logFile: '',
      };
      masters.push(new Master(name, socket, shimConfig, options, new KmsClient(socket)));
    }
    await Promise.all(masters.map((m) => startShim(m, 1)));
    for (const m of masters) await waitHealthy(m.socket);
    await Promise.all(masters.map((m) => startMasterApiserver(m, 1)));
    log(
      `gateway: ${gateways.length === 3 ? '3 replicas on PostgreSQL' : 'one (PostgreSQL not installed)'} at ` +
        `${gateways.map((g) => g.url).join(', ')}; masters ready in ` +
        `${masters.map((m) => `${m.api.readySeconds.toFixed(1)} s`).join(', ')}`,
    );
  });

  after(async () => {
    for (const m of masters) {
      m.kms?.close();
      m.api?.api.close();
    }
    await run.keepEtcdIfFailed(etcd);
    await Promise.all(masters.map((m) => m.api?.service.stop(10_000)));
    await Promise.all(masters.map((m) => m.shim?.stop(10_000)));
    await etcd?.service.stop();
    await Promise.all(gateways.map((g) => g.service?.stop(10_000)));
    pg?.remove();
    for (const line of summary) log(line);
    run.finish(`logs/: every process's log; etcd-dump.jsonl: etcd's keys and raw values when a case failed`);
  });

  it(
    `${SECRETS} Secrets written through each apiserver are read back equal through every other one`,
    { timeout: 300_000 },
    run.step(async () => {
      const keyId = (await (masters[0] as Master).kms.status()).key_id;
      const names = Array.from({ length: SECRETS }, (_, i) => `ha-${String(i).padStart(3, '0')}`);
      const writer = (i: number) => masters[i % MASTERS] as Master;
      const t0 = Date.now();
      await pool(names, 8, (name, i) => book.create(writer(i).api, name, SIZES[i % SIZES.length] ?? 1));
      const created = since(t0);
      const t1 = Date.now();
      let reads = 0;
      await pool(names, 8, async (name, i) => {
        for (let k = 1; k < MASTERS; k++) {
          await book.readBack(other(writer(i), k).api, name);
          reads++;
        }
      });
      const read = since(t1);
      const seeds = new Set<string>();
      const deks = new Set<string>();
      const seedsOf = masters.map(() => new Set<string>());
      for (const [i, name] of names.entries()) {
        const obj = await rawV2(name);
        assert.equal(obj.keyId, keyId, `${name}: key_id`);
        seeds.add(seedOf(obj));
        seedsOf[i % MASTERS]?.add(seedOf(obj));
        deks.add(shimDekOf(obj));
      }
      // Each apiserver writes with its own seed (wrapped by its own shim): the reads above crossed seeds.
      for (const [i, a] of seedsOf.entries())
        for (const b of seedsOf.slice(i + 1))
          assert.ok(![...a].some((x) => b.has(x)), 'two apiservers wrote with the same seed');
      summary.push(
        `cross reads: ${SECRETS} Secrets created round-robin through ${MASTERS} apiservers in ${created}; ` +
          `${reads} reads through the other masters in ${read}, all equal; etcd holds ${seeds.size} seeds ` +
          `(one per apiserver) under ${deks.size} shim DEKs, key_id ${keyId}`,
      );
    }),
  );

  it(
    'rotation: each master adopts the new key_id in its own time; reads and writes never fail meanwhile; re-encryption leaves 0 on the old',
    { timeout: 360_000 },
    run.step(async () => {
      const k1 = (await (masters[0] as Master).kms.status()).key_id;
      const old = book.names();
      const t0 = Date.now();
      gatewayCli(
        'keys',
        'rotate',
        '--config',
        (gateways[0] as Gateway).config,
        '--instance',
        prepared.instanceId,
        '--id',
        prepared.crkId,
      );
      const shimAt = new Map<string, string>();
      const apiAt = new Map<string, string>();
      let k2 = '';
      let writes = 0;
      let reads = 0;
      const failures: string[] = [];
      let round = 0;
      const deadline = Date.now() + 180_000;
      while (apiAt.size < MASTERS && Date.now() < deadline) {
        round++;
        await Promise.all(
          masters.map(async (m) => {
            if (!shimAt.has(m.name)) {
              const now = (await m.kms.status()).key_id;
              if (now !== k1) {
                k2 = now;
                shimAt.set(m.name, since(t0));
              }
            }
            // Each hit runs the apiserver's KMS probe once its 20 s positive cache has expired.
            await kmsProviders(m);
            const probe = `rot-${m.name}-${round}`;
            try {
              await book.create(m.api, probe, 64);
              writes++;
              // A master reads what another wrote with the other key_id, and old data, throughout.
              for (let k = 1; k < MASTERS; k++) await book.readBack(other(m, k).api, probe);
              for (const name of old.slice((round * 5) % old.length).slice(0, 3))
                await book.readBack(m.api, name);
              reads += MASTERS - 1 + 3;
            } catch (err) {
              failures.push(`${since(t0)} ${m.name}: ${why(err)}`);
              return;
            }
            if (!apiAt.has(m.name) && shimAt.has(m.name) && (await rawV2(probe)).keyId !== k1)
              apiAt.set(m.name, since(t0));
          }),
        );
        await sleep(2000);
      }
      assert.deepEqual(failures, [], 'reads and writes failed during the rotation');
      assert.equal(shimAt.size, MASTERS, `shims on the new key_id: ${[...shimAt.keys()].join(', ')}`);
      assert.equal(apiAt.size, MASTERS, `apiservers writing with the new key_id: ${[...apiAt.keys()]}`);

      // The gateway's guided rotation sees every node of the cluster converge (docs/rotation.md).
      let converged = '';
      for (let i = 0; i < 30 && !converged; i++) {
        // Exit 0: safe to disable the old version; 3: not yet (it was used within the quiet window).
        const status = JSON.parse(
          gatewayRun(
            [
              'keys',
              'rotation',
              'status',
              '--config',
              (gateways[1 % gateways.length] as Gateway).config,
              '--instance',
              prepared.instanceId,
              '--id',
              prepared.crkId,
              '--json',
            ],
            [0, 3],
          ),
        ) as {
          clusters: { cluster: string; converged: boolean; nodes: { node: string; converged: boolean }[] }[];
        };
        const c = status.clusters.find((x) => x.cluster === CLUSTER);
        const nodes = (c?.nodes ?? []).filter((n) => n.converged).map((n) => n.node);
        if (c?.converged && nodes.length === MASTERS) converged = nodes.sort().join(', ');
        else await sleep(1000);
      }
      assert.ok(converged, 'keys rotation status did not show the three masters converged');

      // Re-encryption, spread over the masters: GET and PUT back every Secret (what `kubectl replace` does).
      const all = book.names();
      const tr = Date.now();
      await pool(all, 8, async (name, i) => {
        const m = masters[i % MASTERS] as Master;
        const obj = await m.api.api.json<SecretObject>('GET', secretPath(name));
        await m.api.api.json<SecretObject>('PUT', secretPath(name), obj);
      });
      const reencrypted = since(tr);
      let onOld = 0;
      await pool(all, 8, async (name, i) => {
        if ((await rawV2(name)).keyId === k1) onOld++;
        await book.readBack((masters[(i + 1) % MASTERS] as Master).api, name);
      });
      assert.equal(onOld, 0, `${onOld} Secrets still on the old key_id after re-encryption`);
      summary.push(
        `rotation: ${k1} -> ${k2}; shims reported it after ` +
          `${masters.map((m) => `${m.name} ${shimAt.get(m.name)}`).join(', ')}; apiservers wrote with it after ` +
          `${masters.map((m) => `${m.name} ${apiAt.get(m.name)}`).join(', ')}; meanwhile ${writes} writes and ` +
          `${reads} reads (cross-master and old data), 0 failures; keys rotation status: ${converged} converged`,
      );
      summary.push(
        `re-encryption: ${all.length} Secrets read and PUT back through the three masters in ${reencrypted}; 0 left on ${k1}`,
      );
    }),
  );

  /**
   * Writes through every master (each write read back through the next master) until `stop()`, and
   * samples each apiserver's /healthz/kms-providers once a second. Returns what failed, and when.
   */
  function underLoad() {
    const t0 = Date.now();
    let running = true;
    let n = 0;
    const writeFailures = new Map<string, string[]>(masters.map((m) => [m.name, []]));
    const health = new Map<string, { firstFail?: number; lastFail?: number; fails: number; samples: number }>(
      masters.map((m) => [m.name, { fails: 0, samples: 0 }]),
    );
    let writes = 0;
    const writer = async (m: Master) => {
      while (running) {
        const name = `load-${m.name}-${n++}`;
        try {
          await book.create(m.api, name, 512);
          await book.readBack(other(m).api, name);
          writes++;
        } catch (err) {
          writeFailures.get(m.name)?.push(`${since(t0)} ${why(err)}`);
        }
        await sleep(250);
      }
    };
    const prober = async (m: Master) => {
      while (running) {
        const h = health.get(m.name) as {
          firstFail?: number;
          lastFail?: number;
          fails: number;
          samples: number;
        };
        h.samples++;
        if ((await kmsProviders(m)) !== 200) {
          h.fails++;
          h.firstFail ??= Date.now() - t0;
          h.lastFail = Date.now() - t0;
        }
        await sleep(1000);
      }
    };
    const tasks = masters.flatMap((m) => [writer(m), prober(m)]);
    return {
      t0,
      health,
      writeFailures,
      writes: () => writes,
      async stop() {
        running = false;
        await Promise.all(tasks);
      },
    };
  }

  it(
    "a master's shim is killed and restarted under writes: only that master's kms-providers check fails, and it recovers",
    { timeout: 420_000 },
    run.step(async () => {
      const victim = masters[1] as Master;
      const load = underLoad();
      await sleep(5000);
      const killedAt = Date.now();
      await victim.shim.kill();
      // kube-apiserver sees the dead socket at its next probe (its positive result is cached 20 s).
      const vh = load.health.get(victim.name);
      const noticeBy = Date.now() + 90_000;
      while (vh?.firstFail === undefined && Date.now() < noticeBy) await sleep(500);
      assert.ok(
        vh?.firstFail !== undefined,
        `${victim.name}'s kms-providers check never failed without its shim`,
      );
      const noticed = since(killedAt);
      // The kubelet's restart: same config, same socket (a SIGKILL left the socket file behind).
      await startShim(victim, 2);
      const restartedAt = Date.now();
      let recovered = '';
      const recoverBy = Date.now() + 180_000;
      while (!recovered && Date.now() < recoverBy) {
        if ((await kmsProviders(victim)) === 200) recovered = since(restartedAt);
        else await sleep(1000);
      }
      await sleep(3000);
      await load.stop();
      assert.ok(recovered, `${victim.name}'s kms-providers check did not recover within 180 s`);
      for (const m of masters) {
        if (m === victim) continue;
        assert.equal(load.health.get(m.name)?.fails, 0, `${m.name}'s kms-providers check failed`);
        assert.deepEqual(load.writeFailures.get(m.name), [], `writes through ${m.name} failed`);
      }
      const failedFor = ((vh.lastFail ?? 0) - (vh.firstFail ?? 0)) / 1000;
      const victimWrites = load.writeFailures.get(victim.name) ?? [];
      summary.push(
        `shim restart: ${victim.name}'s shim killed (SIGKILL); its apiserver's kms-providers check failed ` +
          `${noticed} later, for ${failedFor.toFixed(1)} s (${vh.fails} of ${vh.samples} 1 s samples), and recovered ` +
          `${recovered} after the restart; writes through ${victim.name} failed ${victimWrites.length} times` +
          `${victimWrites.length > 0 ? ` (${victimWrites.slice(0, 2).join('; ')})` : ''}; the other masters: ` +
          `0 failed checks, 0 failed writes; ${load.writes()} writes read back through another master`,
      );
    }),
  );

  it(
    'the gateway is down for 4 minutes: every master keeps serving reads and writes from its shim; then it comes back',
    { timeout: GATEWAY_OUTAGE_MS + 360_000 },
    run.step(async () => {
      // A good probe on every master right before the outage.
      for (const m of masters) {
        for (let i = 0; i < 15 && (await kmsProviders(m)) !== 200; i++) await sleep(2000);
      }
      const shimPids = masters.map((m) => m.shim.child.pid);
      const apiPids = masters.map((m) => m.api.service.child.pid);
      const old = book.names((n) => n.startsWith('ha-'));
      const t0 = Date.now();
      await Promise.all(gateways.map((g) => g.service?.stop(10_000)));
      for (const g of gateways) g.service = undefined;
      const failures: string[] = [];
      const timeline: string[] = [];
      let samples = 0;
      const sample = async (phase: string, from: number) => {
        const cells: string[] = [];
        await Promise.all(
          masters.map(async (m) => {
            const name = `gw-outage-${m.name}-${samples}`;
            let write = 'ok';
            try {
              await book.create(m.api, name, 256);
              for (let k = 1; k < MASTERS; k++) await book.readBack(other(m, k).api, name);
              await book.readBack(m.api, old[samples % old.length] as string);
            } catch (err) {
              write = why(err);
              failures.push(`${phase} ${since(from)} ${m.name}: ${write}`);
            }
            const status = await m.kms.status().then(
              (s) => s.healthz.slice(0, 30),
              (e: unknown) => String(e).slice(0, 30),
            );
            cells[masters.indexOf(m)] =
              `${m.name} kms-providers=${await kmsProviders(m)} Status="${status}" rw=${write}`;
          }),
        );
        samples++;
        const line = `${phase} t=${since(from).padStart(6)} ${cells.join(' | ')}`;
        timeline.push(line);
        log(line);
      };
      while (Date.now() - t0 < GATEWAY_OUTAGE_MS) {
        await sample('outage', t0);
        await sleep(Math.min(10_000, Math.max(0, GATEWAY_OUTAGE_MS - (Date.now() - t0))));
      }
      const down = since(t0);
      await Promise.all(gateways.map((g) => startGateway(g, 2)));
      const t1 = Date.now();
      let recovered = '';
      while (!recovered && Date.now() - t1 < 120_000) {
        const deep = await Promise.all(
          masters.map((m) =>
            fetch(`http://127.0.0.1:${m.healthPort}/healthz`).then(
              (r) => r.status,
              () => 0,
            ),
          ),
        );
        const probes = await Promise.all(masters.map(kmsProviders));
        if (deep.every((s) => s === 200) && probes.every((s) => s === 200)) recovered = since(t1);
        else await sleep(2000);
      }
      await sample('recovery', t1);
      assert.ok(
        recovered,
        "the shims' deep /healthz or the apiservers' kms-providers did not recover within 120 s",
      );
      assert.deepEqual(failures, [], 'a read or write failed during the gateway outage');
      assert.deepEqual(
        masters.map((m) => m.shim.child.pid),
        shimPids,
        'a shim was restarted',
      );
      assert.deepEqual(
        masters.map((m) => m.api.service.child.pid),
        apiPids,
        'an apiserver was restarted',
      );
      summary.push(
        `gateway outage timeline (t from the stop of all ${gateways.length} replicas, then from their restart):`,
      );
      for (const line of timeline) summary.push(`  ${line}`);
      summary.push(
        `gateway outage: down ${down}; ${samples - 1} samples on each of ${MASTERS} masters, 0 failed reads or writes; ` +
          `shims' deep /healthz and kms-providers all 200 again ${recovered} after the restart, no process restarted`,
      );
    }),
  );

  it(
    'cold start of the whole control plane (gateway up): at most one unwrap per distinct DEK per shim; time to all ready',
    { timeout: 360_000 },
    run.step(async () => {
      const names = book.names();
      const seeds = new Set<string>();
      const deks = new Set<string>();
      for (const name of names) {
        const obj = await rawV2(name);
        seeds.add(seedOf(obj));
        deks.add(shimDekOf(obj));
      }
      const unwraps0 = await gatewayOps('unwrap');
      await Promise.all(
        masters.map(async (m) => {
          m.api.api.close();
          await m.api.service.stop(30_000);
          await m.shim.stop(10_000);
        }),
      );
      // Everything at once, as after a power cut: kubelet starts the shims and the apiservers together.
      const t0 = Date.now();
      await Promise.all(masters.flatMap((m) => [startShim(m, 3), startMasterApiserver(m, 3)]));
      const allReady = since(t0);
      const ready = masters.map((m) => `${m.name} ${m.api.readySeconds.toFixed(1)} s`).join(', ');
      const tr = Date.now();
      await pool(names, 8, (name, i) => book.readBack((masters[i % MASTERS] as Master).api, name));
      const readAll = since(tr);
      const unwraps = (await gatewayOps('unwrap')) - unwraps0;
      const perShim: number[] = [];
      const decrypts: number[] = [];
      for (const m of masters) {
        const text = await shimMetrics(m);
        perShim.push(metricSum(text, 'keygate_shim_gateway_calls_total', { op: 'unwrap', outcome: 'ok' }));
        decrypts.push(metricSum(text, 'keygate_shim_grpc_calls_total', { rpc: 'v2/Decrypt' }));
      }
      for (const [i, n] of perShim.entries())
        assert.ok(
          n <= deks.size,
          `${masters[i]?.name}'s shim unwrapped ${n} times for ${deks.size} distinct DEKs`,
        );
      assert.ok(unwraps <= deks.size * MASTERS, `${unwraps} unwraps at the gateway for ${deks.size} DEKs`);
      summary.push(
        `cold start: ${MASTERS} shims and ${MASTERS} apiservers started at once, all ready in ${allReady} (${ready}); ` +
          `${names.length} Secrets read back equal in ${readAll}; etcd holds ${seeds.size} seeds under ${deks.size} ` +
          `distinct shim DEKs; Decrypt calls per shim ${decrypts.join('/')}, unwraps per shim ${perShim.join('/')} ` +
          `(at most ${deks.size} each), ${unwraps} unwraps at the gateway in all`,
      );
    }),
  );
});
