import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ServiceError } from '@grpc/grpc-js';
import { GrpcStatus, KeygateError } from '@keygate/shared';
import { createLogger } from '@keygate/shared/log';
import { loadShimSettings } from './config.js';
import { KmsClient } from './grpc/kms-client.js';
import { type RunningShim, startShim } from './main.js';
import { FakeKeyProtectServer } from './testing/fake-key-protect-server.js';
import { hasOpenssl, makeTestPki, type TestPki } from './testing/test-pki.js';

const logger = createLogger({ level: 'silent' });
const API_KEY = 'shim-test-key';

describe('startShim against the Key Protect test fake (real mTLS, real UNIX socket)', {
  skip: !hasOpenssl(),
}, () => {
  let pki: TestPki;
  let kp: FakeKeyProtectServer;
  const dir = mkdtempSync(join(tmpdir(), 'kg-main-'));
  const running: RunningShim[] = [];
  const clients: KmsClient[] = [];
  let n = 0;

  function configFile(extra: { newDek?: boolean; refreshSeconds?: number; urls?: string[] } = {}): string {
    const file = join(dir, `config-${n}.yaml`);
    writeFileSync(
      file,
      `SERVER_CONFIG:
  UNIX_SOCKET_PATH: "${join(dir, `s${n}`, 'kms.sock')}"
  TOKEN_URL: "${kp.tokenUrl}"
  TOKEN_URL_CA_FILE: "${pki.caFile}"
  HEALTHZ_PORT: 0
  NEW_DEK: "${extra.newDek ?? false}"
  MAX_RETRIES: "2"
KP_CONFIG:
  CRK_ID: "crk-1"
  URL: "${extra.urls?.[0] ?? kp.url}"
  KP_CA_FILE: "${pki.caFile}"
  INSTANCE_ID: "inst-1"
LOGGER:
  LOG_LEVEL: "silent"
KEYGATE:
  API_KEY_FILE: "${join(dir, 'apikey')}"
  CLIENT_CERT_FILE: "${pki.clientCertFile}"
  CLIENT_KEY_FILE: "${pki.clientKeyFile}"
  GATEWAY_URLS: ${JSON.stringify(extra.urls?.slice(1) ?? [])}
  KEY_ID_REFRESH_SECONDS: ${extra.refreshSeconds ?? 60}
  DEADLINE_MS: 1000
  BREAKER_OPEN_SECONDS: 1
`,
    );
    n++;
    return file;
  }

  async function shim(
    extra: Parameters<typeof configFile>[0] = {},
  ): Promise<{ s: RunningShim; c: KmsClient }> {
    const s = await startShim(loadShimSettings(configFile(extra), {}), { logger });
    running.push(s);
    const c = new KmsClient(s.socketPath);
    clients.push(c);
    return { s, c };
  }

  before(async () => {
    pki = makeTestPki();
    writeFileSync(join(dir, 'apikey'), `${API_KEY}\n`);
    kp = await FakeKeyProtectServer.start({ pki, apiKey: API_KEY, instanceId: 'inst-1', crkId: 'crk-1' });
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(running.map((s) => s.close()));
    await kp.stop();
  });

  it('serves v2 and v1 with Status key_id = Encrypt key_id, and any shim decrypts another one’s data', async () => {
    const a = await shim();
    const st = await a.c.status();
    assert.equal(st.healthz, 'ok');
    assert.equal(st.key_id, `keygate/inst-1/crk-1/${kp.currentVersion}`);
    const enc = await a.c.encrypt(Buffer.alloc(32, 7));
    assert.equal(enc.key_id, st.key_id);
    assert.ok(enc.ciphertext.length <= 1024);
    const v1 = await a.c.v1Encrypt(Buffer.from('v1 dek'));
    const b = await shim();
    assert.equal((await b.c.status()).key_id, st.key_id, 'the same key_id on every node');
    assert.deepEqual((await b.c.decrypt(enc.ciphertext, enc.key_id)).plaintext, Buffer.alloc(32, 7));
    assert.equal((await b.c.v1Decrypt(v1.cipher)).plain.toString(), 'v1 dek');
  });

  it('1,000 decrypts under one DEK cost one unwrap; 64 concurrent cold decrypts cost one', async () => {
    const a = await shim();
    const cts = [];
    for (let i = 0; i < 1000; i++) cts.push(await a.c.encrypt(Buffer.from(`seed-${i}`)));
    const b = await shim();
    const before = kp.counts.unwrap;
    for (const [i, e] of cts.entries()) {
      assert.equal((await b.c.decrypt(e.ciphertext, e.key_id)).plaintext.toString(), `seed-${i}`);
    }
    assert.equal(kp.counts.unwrap - before, 1);
    const c = await shim();
    const first = cts[0];
    assert.ok(first);
    const before2 = kp.counts.unwrap;
    await Promise.all(Array.from({ length: 64 }, () => c.c.decrypt(first.ciphertext, first.key_id)));
    assert.equal(kp.counts.unwrap - before2, 1);
  });

  it('survives a gateway outage: cached decrypts and NEW_DEK=false encrypts work, NEW_DEK=true is UNAVAILABLE, then recovers', async () => {
    const reuse = await shim({ refreshSeconds: 1 });
    const fresh = await shim({ newDek: true, refreshSeconds: 1 });
    const r1 = await reuse.c.encrypt(Buffer.from('r1'));
    const f1 = await fresh.c.encrypt(Buffer.from('f1'));
    const keyId = (await reuse.c.status()).key_id;
    await kp.stop();
    try {
      assert.equal((await reuse.c.decrypt(r1.ciphertext, r1.key_id)).plaintext.toString(), 'r1');
      assert.equal((await fresh.c.decrypt(f1.ciphertext, f1.key_id)).plaintext.toString(), 'f1');
      const r2 = await reuse.c.encrypt(Buffer.from('r2'));
      assert.equal((await reuse.c.decrypt(r2.ciphertext, r2.key_id)).plaintext.toString(), 'r2');
      await assert.rejects(
        fresh.c.encrypt(Buffer.from('f2')),
        (e: ServiceError) => e.code === GrpcStatus.UNAVAILABLE,
      );
      // NEW_DEK=true needs the gateway for every Encrypt: Status says so. NEW_DEK=false still serves
      // everything from its current DEK, so its Status stays ok and apiserver keeps writing.
      await waitFor(async () => (await fresh.c.status()).healthz !== 'ok');
      assert.equal((await reuse.c.status()).healthz, 'ok');
      assert.equal((await reuse.c.status()).key_id, keyId, 'key_id unchanged during the outage');
      const health = await fetch(`http://127.0.0.1:${reuse.s.healthPort}/healthz`);
      assert.equal(health.status, 503);
      assert.equal((await fetch(`http://127.0.0.1:${reuse.s.healthPort}/livez`)).status, 200);
    } finally {
      await kp.listen();
    }
    await waitFor(async () => (await fresh.c.status()).healthz === 'ok');
    const f3 = await fresh.c.encrypt(Buffer.from('f3'));
    assert.equal((await fresh.c.decrypt(f3.ciphertext, f3.key_id)).plaintext.toString(), 'f3');
  });

  it('keeps its DEKs through a glitch that proves nothing (a bare 410 from a proxy, a missing HSM object), and drops them on a real KEY_DELETED_ERR', async () => {
    const a = await shim({ refreshSeconds: 1 });
    const made = await a.c.encrypt(Buffer.from('kept'));
    const cold = await shim(); // decrypts once now, so its DEK is cached before the glitch
    assert.equal((await cold.c.decrypt(made.ciphertext, made.key_id)).plaintext.toString(), 'kept');
    const unwraps = kp.counts.unwrap;
    const glitch = async (set: () => void) => {
      const wraps = kp.counts.wrap;
      set();
      try {
        // The background refresh (every second) meets the glitch at least twice.
        await waitFor(async () => kp.counts.wrap >= wraps + 2);
        const e = await a.c.encrypt(Buffer.from('during'));
        assert.equal(e.key_id, made.key_id);
        assert.equal((await a.c.decrypt(e.ciphertext, e.key_id)).plaintext.toString(), 'during');
        assert.equal((await a.c.decrypt(made.ciphertext, made.key_id)).plaintext.toString(), 'kept');
        assert.equal((await cold.c.decrypt(made.ciphertext, made.key_id)).plaintext.toString(), 'kept');
        assert.notEqual((await a.c.status()).healthz, 'root key destroyed');
      } finally {
        kp.failStatus = undefined;
        kp.failWith = undefined;
      }
    };
    await glitch(() => {
      kp.failStatus = 410;
    });
    await glitch(() => {
      kp.failWith = 'HSM_KEY_OBJECT_MISSING';
    });
    assert.equal(kp.counts.unwrap, unwraps, 'no DEK was dropped, so none had to be unwrapped again');
    // What a destroyed key really looks like: the gateway names KEY_DELETED_ERR with 410.
    kp.failWith = 'KEY_DELETED_ERR';
    try {
      await waitFor(async () => (await a.c.status()).healthz === 'root key destroyed');
      await assert.rejects(
        a.c.decrypt(made.ciphertext, made.key_id),
        (e: ServiceError) => e.code === GrpcStatus.FAILED_PRECONDITION,
      );
    } finally {
      kp.failWith = undefined;
    }
  });

  it('changes the key_id after a root key rotation within the refresh interval; old ciphertexts still decrypt', async () => {
    const a = await shim({ refreshSeconds: 1 });
    const old = await a.c.encrypt(Buffer.from('before rotation'));
    kp.rotate();
    await waitFor(async () => (await a.c.status()).key_id !== old.key_id);
    const st = await a.c.status();
    assert.equal(st.key_id, `keygate/inst-1/crk-1/${kp.currentVersion}`);
    const now = await a.c.encrypt(Buffer.from('after'));
    assert.equal(now.key_id, st.key_id);
    assert.equal((await a.c.decrypt(old.ciphertext, old.key_id)).plaintext.toString(), 'before rotation');
    const b = await shim();
    assert.equal((await b.c.decrypt(old.ciphertext, old.key_id)).plaintext.toString(), 'before rotation');
  });

  it('fails over to a second gateway URL when the first is down', async () => {
    const dead = await FakeKeyProtectServer.start({
      pki,
      apiKey: API_KEY,
      instanceId: 'inst-1',
      crkId: 'crk-1',
    });
    const deadUrl = dead.url;
    await dead.stop();
    const a = await shim({ urls: [deadUrl, kp.url], newDek: true });
    for (let i = 0; i < 5; i++) await a.c.encrypt(Buffer.from(`x${i}`));
    const metrics = await (await fetch(`http://127.0.0.1:${a.s.healthPort}/metrics`)).text();
    assert.match(metrics, new RegExp(`keygate_shim_gateway_breaker_state\\{url="${deadUrl}"[^}]*\\} 2`));
    assert.match(metrics, /keygate_shim_grpc_calls_total\{rpc="v2\/Encrypt",code="0"/);
    assert.equal((await a.c.status()).healthz, 'ok');
  });

  it('refuses a second shim on a live socket and serves /healthz', async () => {
    const a = await shim();
    const settings = loadShimSettings(configFile(), {});
    const again = { ...settings, socketPath: a.s.socketPath };
    await assert.rejects(
      startShim(again, { logger, noHealthServer: true }),
      (e: unknown) => e instanceof KeygateError && e.code === 'SOCKET_IN_USE',
    );
    const h = await fetch(`http://127.0.0.1:${a.s.healthPort}/healthz`);
    assert.equal(h.status, 200);
    assert.equal((await a.c.status()).healthz, 'ok', 'the first shim keeps serving');
  });
});

async function waitFor(cond: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.fail('condition not met in time');
}
