import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { systemRandom } from '@keygate/shared/crypto';
import { createLogger } from '@keygate/shared/log';
import { auditVerifyKey, createAuditKeyFile } from './adapters/audit/key-file-signer.js';
import { verifyPostgresAudit } from './adapters/audit/pg-audit-export.js';
import { PgDatabase } from './adapters/postgres/pg-database.js';
import { poolConfig, postgresSettingsSchema } from './adapters/postgres/pg-settings.js';
import type { RunningGateway } from './main.js';
import {
  call,
  createGatewayFixture,
  type GatewayFixture,
  INSTANCE,
  postgresStoreYaml,
} from './testing/gateway-fixture.js';
import { startTestPostgres, type TestPostgres } from './testing/postgres.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';

/**
 * `audit.target: postgres` through `serve`'s composition root: two gateway replicas on one
 * PostgreSQL write every key operation into ONE audit chain, which verifies after both stop.
 */
describe('two gateway replicas auditing into one PostgreSQL chain', () => {
  let fx: GatewayFixture;
  let pg: TestPostgres;
  let publicKeyPem: string;
  const gws: RunningGateway[] = [];

  before(async () => {
    fx = await createGatewayFixture();
    pg = await startTestPostgres({ fast: true });
    const keyFile = join(fx.softhsm.dir, 'audit-signing.pem');
    publicKeyPem = (await createAuditKeyFile(keyFile)).publicKeyPem;
    const store = postgresStoreYaml(pg, ['reconcileInterval: 1s']);
    for (const name of ['replica-a', 'replica-b']) {
      const extra = `audit:\n  target: postgres\n  signingKeyFile: ${keyFile}\n  replica: ${name}\n  checkpointEvery: 10\n`;
      gws.push(
        await startGatewayFromFile(fx.writeConfig(name, { store, extra }), {
          logDestination: captureLines().stream,
        }),
      );
    }
  });
  after(async () => {
    for (const g of gws) await g.close().catch(() => undefined);
    pg?.remove();
    fx?.softhsm.cleanup();
  });

  it('every answered key operation of both replicas is in the chain, which verifies sealed', async () => {
    const gw = (i: number) => gws[i] as RunningGateway;
    const created = await call(gw(0).url, 'POST', '/api/v2/keys', {
      client: fx.clients.admin,
      ca: fx.ca.certPem,
      instance: INSTANCE,
      body: {
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [{ type: 'application/vnd.ibm.kms.key+json', name: 'audited' }],
      },
    });
    assert.equal(created.status, 201, created.text);
    const keyId = String(created.json<{ resources: { id: string }[] }>().resources[0]?.id);
    const wraps = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        call(gw(i % 2).url, 'POST', `/api/v2/keys/${keyId}/actions/wrap`, {
          client: fx.clients.allowed,
          ca: fx.ca.certPem,
          instance: INSTANCE,
          body: { plaintext: systemRandom(32).toString('base64') },
        }),
      ),
    );
    for (const w of wraps) assert.equal(w.status, 200, w.text);
    for (const g of gws.splice(0)) await g.close();

    const settings = postgresSettingsSchema.parse({
      host: pg.host,
      port: pg.port,
      database: pg.database,
      user: pg.user,
      passwordFile: pg.passwordFile,
    });
    const db = new PgDatabase({
      pool: poolConfig(settings, 'test.yaml'),
      describe: 'test',
      logger: createLogger({ level: 'silent', name: 'test' }),
      migrate: false,
    });
    try {
      const report = await verifyPostgresAudit(db, [auditVerifyKey(publicKeyPem)], { requireSealed: true });
      assert.equal(report.ok, true, JSON.stringify(report.problem));
      assert.equal(report.events, 21, 'one key.create and 20 wraps');
      assert.equal(report.starts, 2);
      const ops = await db.query<{ replica: string; op: string; n: string }>(
        `SELECT replica, line::jsonb->>'operation' AS op, count(*)::text AS n FROM keygate_audit
         WHERE type = 'event' GROUP BY 1, 2 ORDER BY 1, 2`,
      );
      assert.deepEqual(ops.rows, [
        { replica: 'replica-a', op: 'key.create', n: '1' },
        { replica: 'replica-a', op: 'wrap', n: '10' },
        { replica: 'replica-b', op: 'wrap', n: '10' },
      ]);
    } finally {
      await db.close();
    }
  });
});
