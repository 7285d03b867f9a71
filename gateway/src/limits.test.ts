import assert from 'node:assert/strict';
import { Agent } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { systemRandom } from '@keygate/shared/crypto';
import type { RunningGateway } from './main.js';
import { issueLeaf } from './pki/index.js';
import {
  type CallResult,
  type ClientCert,
  call,
  createGatewayFixture,
  errorCode,
  type GatewayFixture,
  INSTANCE,
} from './testing/gateway-fixture.js';
import { captureLines } from './testing/softhsm.js';
import { startGatewayFromFile } from './testing/start-gateway.js';
import { fetchToken, readAuditRecords, requestToken, writeTokenModeConfig } from './testing/token-mode.js';

/**
 * Issue 13 items 3 and 4 on a real gateway (SoftHSM2, mutual TLS, the durable audit log):
 * overload is refused fast with 503 OVERLOADED and Retry-After instead of queueing until every
 * caller has timed out; work whose caller has given up (`x-keygate-timeout-ms`) is dropped before
 * the HSM and the audit log; refused token and key requests are rate limited per certificate and
 * identity (429) and summarised in the audit log instead of one record each; successful key
 * operations are never rate limited.
 */
describe('gateway limits: overload, deadlines, refused-request floods', () => {
  let fx: GatewayFixture;
  const started: RunningGateway[] = [];
  const agents: Agent[] = [];

  before(async () => {
    fx = await createGatewayFixture();
  });
  after(async () => {
    for (const a of agents) a.destroy();
    for (const g of started) await g.close();
    fx?.softhsm.cleanup();
  });

  /** A keep-alive client with `client`'s certificate (floods do not pay a handshake per request). */
  const keepAlive = (client: ClientCert): Agent => {
    const a = new Agent({ keepAlive: true, maxSockets: 16, ca: fx.ca.certPem, ...client });
    agents.push(a);
    return a;
  };

  const startTokenMode = async (
    name: string,
    opts: { extra?: string; hsmExtra?: string; logLevel?: string } = {},
  ) => {
    const setup = await writeTokenModeConfig(fx, name, opts);
    const log = captureLines();
    const gw = await startGatewayFromFile(setup.config, { logDestination: log.stream });
    started.push(gw);
    const adminToken = await fetchToken(gw.url, fx.ca.certPem, fx.clients.admin, setup.adminApiKey);
    const created = await call(gw.url, 'POST', '/api/v2/keys', {
      ca: fx.ca.certPem,
      client: fx.clients.admin,
      instance: INSTANCE,
      headers: { authorization: `Bearer ${adminToken}` },
      body: {
        metadata: { collectionType: 'application/vnd.ibm.kms.key+json', collectionTotal: 1 },
        resources: [{ type: 'application/vnd.ibm.kms.key+json', name: `${name}-key` }],
      },
    });
    assert.equal(created.status, 201, created.text);
    const keyId = String(created.json<{ resources: { id: string }[] }>().resources[0]?.id);
    const token = await fetchToken(gw.url, fx.ca.certPem, fx.clients.allowed, setup.apiKey);
    return { gw, setup, keyId, token, log: log.lines };
  };

  const wrapWith = (
    url: string,
    keyId: string,
    token: string,
    agent: Agent,
    headers: Record<string, string> = {},
  ): Promise<CallResult> =>
    call(url, 'POST', `/api/v2/keys/${keyId}/actions/wrap`, {
      ca: fx.ca.certPem,
      client: fx.clients.allowed,
      instance: INSTANCE,
      agent,
      headers: { authorization: `Bearer ${token}`, ...headers },
      body: { plaintext: systemRandom(32).toString('base64') },
    });

  const tally = (rs: readonly CallResult[]): Record<string, number> => {
    const out: Record<string, number> = {};
    for (const r of rs) {
      const k = r.status === 200 ? '200' : `${r.status} ${errorCode(r) ?? r.json().keygateCode}`;
      out[k] = (out[k] ?? 0) + 1;
    }
    return out;
  };

  it('a burst beyond maxInFlight + maxQueued is refused at once with 503 OVERLOADED and Retry-After', async () => {
    const { gw, setup, keyId, token } = await startTokenMode('overload', {
      hsmExtra: 'simulatedLatencyMs: 40',
      extra: 'limits:\n  maxInFlight: 2\n  maxQueued: 4\n',
    });
    const agent = keepAlive(fx.clients.allowed);
    const rs = await Promise.all(Array.from({ length: 40 }, () => wrapWith(gw.url, keyId, token, agent)));
    const counts = tally(rs);
    console.log(`overload burst of 40 with 2 running + 4 queued: ${JSON.stringify(counts)}`);
    assert.ok((counts['503 OVERLOADED'] ?? 0) > 0, JSON.stringify(counts));
    assert.ok((counts['200'] ?? 0) >= 6, JSON.stringify(counts));
    assert.deepEqual(Object.keys(counts).sort(), ['200', '503 OVERLOADED']);
    for (const r of rs.filter((x) => x.status === 503)) assert.equal(r.headers['retry-after'], '1');
    // Every success, and only those, is on record as one; the refusals are summarised.
    await gw.close();
    started.splice(started.indexOf(gw), 1);
    const records = readAuditRecords(setup.auditDir).filter((r) => r.operation === 'wrap');
    assert.equal(records.filter((r) => r.outcome === 'success').length, counts['200']);
    const refused = records.filter((r) => r.errorCode === 'OVERLOADED');
    const accounted = refused.reduce((n, r) => n + (typeof r.count === 'number' ? r.count : 1), 0);
    assert.equal(accounted, counts['503 OVERLOADED'], 'every refusal is on record, alone or in a summary');
    assert.ok(refused.length <= 2, `${refused.length} OVERLOADED records: not summarised`);
  });

  it('work whose caller has given up is dropped before the HSM and before the audit log', async () => {
    const { gw, setup, keyId, token, log } = await startTokenMode('deadlines', {
      logLevel: 'debug',
      hsmExtra: 'simulatedLatencyMs: 50',
      extra: 'limits:\n  maxInFlight: 1\n  maxQueued: 100\n',
    });
    const agent = keepAlive(fx.clients.allowed);
    // Already expired: never admitted.
    const expired = await wrapWith(gw.url, keyId, token, agent, { 'x-keygate-timeout-ms': '0' });
    assert.equal(expired.status, 504, expired.text);
    assert.equal(errorCode(expired), 'DEADLINE_EXCEEDED');
    // 30 callers that wait 300 ms each, behind one slot of a 50 ms HSM: the late ones are dropped.
    const rs = await Promise.all(
      Array.from({ length: 30 }, () =>
        wrapWith(gw.url, keyId, token, agent, { 'x-keygate-timeout-ms': '300' }),
      ),
    );
    const counts = tally(rs);
    console.log(`deadline 300 ms, 30 callers, one 50 ms slot: ${JSON.stringify(counts)}`);
    assert.ok((counts['200'] ?? 0) > 0 && (counts['504 DEADLINE_EXCEEDED'] ?? 0) > 0, JSON.stringify(counts));
    await gw.close();
    started.splice(started.indexOf(gw), 1);
    const wraps = readAuditRecords(setup.auditDir).filter((r) => r.operation === 'wrap');
    const successes = wraps.filter((r) => r.outcome === 'success');
    assert.equal(successes.length, counts['200']);
    for (const r of successes) {
      assert.ok(typeof r.deadline === 'string', 'a success record carries its deadline');
      assert.ok(Date.parse(String(r.time)) <= Date.parse(String(r.deadline)), 'recorded after its deadline');
    }
    // Dropped before the HSM: far fewer HSM calls than callers (each success is one HSM call).
    const dropped = wraps.filter((r) => r.errorCode === 'DEADLINE_EXCEEDED');
    const droppedCount = dropped.reduce((n, r) => n + (typeof r.count === 'number' ? r.count : 1), 0);
    assert.equal(droppedCount, (counts['504 DEADLINE_EXCEEDED'] ?? 0) + 1);
    const reasons = log
      .filter((l) => l.msg === 'request shed')
      .map((l) => (l.err as { detail?: { reason?: string } } | undefined)?.detail?.reason);
    assert.ok(reasons.includes('while queued'), `dropped where? ${JSON.stringify(reasons)}`);
  });

  it('a refused-token flood from one certificate: 429 with Retry-After, a few audit records, others unaffected', async () => {
    const { gw, setup, keyId, token } = await startTokenMode('flood', {
      extra: 'limits:\n  refusalSummaryWindow: 2s\n',
    });
    const attacker = keepAlive(fx.clients.stranger);
    const flood = await Promise.all(
      Array.from({ length: 1500 }, () =>
        call(gw.url, 'POST', '/identity/token', {
          ca: fx.ca.certPem,
          client: fx.clients.stranger,
          agent: attacker,
          rawBody: 'grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey=kg_wrong',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        }),
      ),
    );
    const counts: Record<string, number> = {};
    for (const r of flood) {
      const k = `${r.status} ${String(r.json().keygateCode)}`;
      counts[k] = (counts[k] ?? 0) + 1;
    }
    console.log(`refused-token flood of 1500 from one certificate: ${JSON.stringify(counts)}`);
    assert.ok((counts['429 RATE_LIMITED_ERR'] ?? 0) > 1000, JSON.stringify(counts));
    assert.ok(flood.some((r) => r.status === 429 && Number(r.headers['retry-after']) >= 1));
    // Meanwhile a legitimate cluster gets its token and its key operations, never a 429.
    const legit = keepAlive(fx.clients.allowed);
    const own = await requestToken(gw.url, fx.ca.certPem, fx.clients.allowed, setup.apiKey);
    assert.equal(own.status, 200, own.text);
    const ops = await Promise.all(Array.from({ length: 200 }, () => wrapWith(gw.url, keyId, token, legit)));
    assert.deepEqual(tally(ops), { '200': 200 });
    const metrics = await call(gw.url, 'GET', '/metrics', { ca: fx.ca.certPem, client: fx.clients.allowed });
    assert.match(
      metrics.text,
      /keygate_gateway_rate_limited_total\{limit="token-per-certificate"[^}]*\} \d+/,
    );
    await gw.close();
    started.splice(started.indexOf(gw), 1);
    // The audit log: a handful of records for 1500 refusals, and every refusal is accounted for.
    const refusals = readAuditRecords(setup.auditDir).filter(
      (r) => r.operation === 'token.issue' && r.outcome !== 'success',
    );
    const accounted = refusals.reduce((n, r) => n + (typeof r.count === 'number' ? r.count : 1), 0);
    assert.equal(accounted, 1500);
    assert.ok(refusals.length <= 10, `${refusals.length} audit records for one flood`);
    assert.ok(refusals.every((r) => r.certIdentity === 'spiffe://keygate/cluster/stranger'));
  });

  it('token requests are limited per certificate and per identity; key operations never are', async () => {
    const { gw, setup, keyId, token } = await startTokenMode('token-limits', {
      extra: [
        'limits:',
        '  tokenPerCertificate: { ratePerSecond: 0.1, burst: 5 }',
        '  tokenPerIdentity: { ratePerSecond: 0.1, burst: 8 }',
        '',
      ].join('\n'),
    });
    // A second certificate of the same service identity (another control-plane node).
    const leaf = await issueLeaf(fx.ca, {
      commonName: 'prod-eu-1-node-b',
      usage: 'client',
      uris: ['spiffe://keygate/cluster/prod-eu-1'],
    });
    const nodeB = { cert: leaf.certPem, key: leaf.keyPem };
    const ask = async (client: ClientCert) => {
      const r = await requestToken(gw.url, fx.ca.certPem, client, setup.apiKey);
      return r.status === 200 ? '200' : `${r.status} ${String(r.json().keygateCode)}`;
    };
    const a: string[] = [];
    for (let i = 0; i < 5; i++) a.push(await ask(fx.clients.allowed));
    // startTokenMode took one token with node A's certificate: 4 more fit its burst of 5.
    assert.deepEqual(a, ['200', '200', '200', '200', '429 RATE_LIMITED_ERR']);
    const b: string[] = [];
    for (let i = 0; i < 4; i++) b.push(await ask(nodeB));
    // Node B has its own certificate budget, but the identity's burst of 8 is spent after 3 more.
    assert.deepEqual(b, ['200', '200', '200', '429 RATE_LIMITED_ERR']);
    const metrics = await call(gw.url, 'GET', '/metrics', { ca: fx.ca.certPem, client: fx.clients.allowed });
    assert.match(metrics.text, /keygate_gateway_rate_limited_total\{limit="token-per-identity"[^}]*\} 1\n/);
    const agent = keepAlive(fx.clients.allowed);
    const wraps = await Promise.all(Array.from({ length: 100 }, () => wrapWith(gw.url, keyId, token, agent)));
    assert.deepEqual(tally(wraps), { '200': 100 });
  });
});
