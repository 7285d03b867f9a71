import assert from 'node:assert/strict';
import { type ChildProcess, execFile } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { systemRandom } from '@keygate/shared/crypto';
import { auditVerifyKey } from './adapters/audit/key-file-signer.js';
import { verifyAuditDir } from './adapters/audit/verify-dir.js';
import type { RunningGateway } from './main.js';
import {
  type CallResult,
  call,
  createGatewayFixture,
  errorCode,
  type GatewayFixture,
  INSTANCE,
} from './testing/gateway-fixture.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';
import {
  CLI,
  fetchToken,
  readAuditRecords,
  readAuditText,
  requestToken,
  serve,
  signToken,
  writeTokenModeConfig,
} from './testing/token-mode.js';

const run = promisify(execFile);

const createKeyBody = (name: string) => ({
  metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
  resources: [{ type: 'application/vnd.ibm.kms.key+json', name }],
});

describe('audit durability: SIGKILL under load, and an unwritable audit folder', () => {
  let fx: GatewayFixture;
  const procs: ChildProcess[] = [];

  before(async () => {
    fx = await createGatewayFixture();
  });

  after(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    fx?.softhsm.cleanup();
  });

  it('every request answered 200 before a SIGKILL has its record on disk; verify passes or sees only a torn last line', async () => {
    const setup = await writeTokenModeConfig(fx, 'crash', { auditStdout: true });
    const gw = await serve(setup.config, fx.softhsm.env);
    procs.push(gw.child);
    const ca = fx.ca.certPem;
    const token = await fetchToken(gw.url, ca, fx.clients.allowed, setup.apiKey);
    const admin = await fetchToken(gw.url, ca, fx.clients.admin, setup.adminApiKey);
    const created = await call(gw.url, 'POST', '/api/v2/keys', {
      ca,
      client: fx.clients.admin,
      instance: INSTANCE,
      body: createKeyBody('crash'),
      headers: { authorization: `Bearer ${admin}` },
    });
    assert.equal(created.status, 201, created.text);
    const keyId = String(created.json<{ resources: { id: string }[] }>().resources[0]?.id);

    const ok = new Set<string>();
    const deks: string[] = [];
    let stop = false;
    let killed = false;
    const worker = async () => {
      while (!stop) {
        const dek = systemRandom(32).toString('base64');
        deks.push(dek);
        let r: CallResult;
        try {
          r = await call(gw.url, 'POST', `/api/v2/keys/${keyId}/actions/wrap`, {
            ca,
            client: fx.clients.allowed,
            instance: INSTANCE,
            body: { plaintext: dek },
            headers: { authorization: `Bearer ${token}` },
          });
        } catch {
          if (killed) return;
          continue;
        }
        if (r.status === 200) ok.add(String(r.headers['x-request-id']));
        if (ok.size >= 120 && !killed) {
          killed = true;
          gw.child.kill('SIGKILL');
        }
      }
    };
    const exited = once(gw.child, 'exit');
    await Promise.race([
      Promise.all(Array.from({ length: 16 }, worker)),
      exited.then(() => {
        stop = true;
      }),
    ]);
    stop = true;
    await exited;
    assert.equal(gw.child.signalCode, 'SIGKILL');
    assert.ok(ok.size >= 120);

    const records = readAuditRecords(setup.auditDir);
    const onDisk = new Set(records.filter((r) => r.operation === 'wrap').map((r) => String(r.requestId)));
    const missing = [...ok].filter((id) => !onDisk.has(id));
    assert.deepEqual(missing, [], 'answered requests without an audit record');
    const keys = [auditVerifyKey(setup.auditPublicKeyPem)];
    const report = await verifyAuditDir(setup.auditDir, keys);
    assert.ok(report.ok || report.problem?.kind === 'torn', JSON.stringify(report.problem));

    // The audit stream on stdout carried the same events, and nothing secret anywhere.
    assert.match(gw.stdout(), /"type":"event".*"operation":"wrap"/);
    const everything = gw.stdout() + readAuditText(setup.auditDir);
    for (const s of [setup.apiKey, setup.adminApiKey, token, admin, ...deks]) {
      assert.ok(!everything.includes(s), 'a secret is in the log or the audit files');
    }

    // Restart: the sink cuts a torn line, writes a recovery record; after SIGTERM the log is sealed.
    const again = await serve(setup.config, fx.softhsm.env);
    procs.push(again.child);
    const t2 = await fetchToken(again.url, ca, fx.clients.allowed, setup.apiKey);
    assert.ok(t2);
    // A second gateway on the same audit folder is refused at start (it would fork the chain).
    const second = await run(process.execPath, [CLI, 'serve', '--config', setup.config], {
      env: { ...process.env, ...fx.softhsm.env },
      timeout: 30_000,
    }).then(
      () => undefined,
      (err: { code: number; stderr: string }) => err,
    );
    assert.equal(second?.code, 1);
    assert.match(String(second?.stderr), /audit\.dir/);
    again.child.kill('SIGTERM');
    await once(again.child, 'exit');
    const records2 = readAuditRecords(setup.auditDir);
    assert.ok(records2.some((r) => r.type === 'recovery' && r.reason === 'unclean-shutdown'));
    const verify = await run(process.execPath, [
      CLI,
      'audit',
      'verify',
      setup.auditDir,
      '--key',
      setup.auditPublicKeyFile,
      '--sealed',
    ]);
    assert.match(verify.stdout, /^OK: .*sealed/);
  });

  it('with an unwritable audit folder: key operations answer 503 AUDIT_UNAVAILABLE before the HSM', async () => {
    const blocker = join(fx.softhsm.dir, 'not-a-dir');
    writeFileSync(blocker, 'a regular file\n');
    const setup = await writeTokenModeConfig(fx, 'broken', { auditDir: join(blocker, 'audit') });
    // A key made on the host with the CLI (not audited by the server), so a wrap would reach the HSM.
    const created = await run(
      process.execPath,
      [CLI, 'keys', 'create', '--config', setup.config, '--instance', INSTANCE, '--name', 'blocked'],
      { env: { ...process.env, ...fx.softhsm.env } },
    );
    const keyId = (JSON.parse(created.stdout) as { id: string }).id;

    const log = captureLines();
    const gw: RunningGateway = await startGatewayFromFile(setup.config, { logDestination: log.stream });
    try {
      const hsm = gw.runtime.hsm;
      let hsmCalls = 0;
      const count =
        <A extends unknown[], R>(f: (...a: A) => Promise<R>) =>
        (...a: A) => {
          hsmCalls++;
          return f(...a);
        };
      Object.assign(hsm, {
        encrypt: count(hsm.encrypt.bind(hsm)),
        decrypt: count(hsm.decrypt.bind(hsm)),
        generateKey: count(hsm.generateKey.bind(hsm)),
        destroyKey: count(hsm.destroyKey.bind(hsm)),
      });
      const ca = fx.ca.certPem;
      assert.ok(log.lines.some((l) => String(l.msg).startsWith('audit log unavailable')));

      const t = await requestToken(gw.url, ca, fx.clients.allowed, setup.apiKey);
      assert.equal(t.status, 503);
      assert.equal(t.json().keygateCode, 'AUDIT_UNAVAILABLE');

      const token = await signToken(setup.signingKeyFile, {
        subject: 'prod-eu-1',
        roles: { [INSTANCE]: ['wrap', 'unwrap'] },
        cert: fx.clients.allowed,
        at: new Date(),
        lifetimeSeconds: 600,
      });
      const w = await call(gw.url, 'POST', `/api/v2/keys/${keyId}/actions/wrap`, {
        ca,
        client: fx.clients.allowed,
        instance: INSTANCE,
        body: { plaintext: systemRandom(32).toString('base64') },
        headers: { authorization: `Bearer ${token}` },
      });
      assert.equal(w.status, 503, w.text);
      assert.equal(errorCode(w), 'AUDIT_UNAVAILABLE');
      assert.equal(hsmCalls, 0);

      const ready = await call(gw.url, 'GET', '/readyz', { ca, client: fx.clients.allowed });
      assert.equal(ready.status, 503);
      assert.equal(ready.json<{ audit: { ready: boolean } }>().audit.ready, false);
      const metrics = await call(gw.url, 'GET', '/metrics', { ca, client: fx.clients.allowed });
      assert.match(
        metrics.text,
        /keygate_gateway_operations_total\{operation="wrap",outcome="failure",code="AUDIT_UNAVAILABLE"[^}]*\} 1\n/,
      );
      assert.doesNotMatch(metrics.text, /operation="wrap",outcome="success"/);
    } finally {
      await gw.close();
    }
  });
});
