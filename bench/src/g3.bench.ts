/**
 * G3: 500 distinct clients (own certificates, own tokens) connect at once: each opens its own mTLS
 * connection, gets a token bound to its certificate, and unwraps once. Target: all served, none
 * refused; the handshake storm time is reported.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, type IssuedCert, issueLeaf } from '@keygate/gateway/pki';
import { Client, request } from 'undici';
import { fmt, percentile } from './lib/measure.js';
import { type BenchResult, mainIf } from './lib/result.js';
import {
  BENCH_HOME,
  fetchToken,
  MtlsClient,
  prepare,
  stackTls,
  startGateway,
  unwrapFixture,
} from './lib/stack.js';

const CLIENTS = Number(process.env.BENCH_G3_CLIENTS ?? 500);

interface ClientCert {
  readonly identity: string;
  readonly certPem: string;
  readonly keyPem: string;
}

/**
 * 500 client certificates from a CA of the benchmark's own (added to the gateway's client CA
 * bundle), made once and kept under bench/.work.
 */
async function clientCerts(): Promise<{ caPem: string; certs: ClientCert[] }> {
  const file = join(BENCH_HOME, `g3-clients-${CLIENTS}.json`);
  if (existsSync(file))
    return JSON.parse(readFileSync(file, 'utf8')) as { caPem: string; certs: ClientCert[] };
  const ca: IssuedCert = await createCa('keygate bench G3 CA');
  const out: ClientCert[] = [];
  for (let i = 0; i < CLIENTS; i++) {
    const identity = `spiffe://keygate/bench/client-${i}`;
    const leaf = await issueLeaf(ca, { commonName: `bench-${i}`, usage: 'client', uris: [identity] });
    out.push({ identity, certPem: leaf.certPem, keyPem: leaf.keyPem });
  }
  const made = { caPem: ca.certPem, certs: out };
  writeFileSync(file, JSON.stringify(made), { mode: 0o600 });
  return made;
}

export async function runG3(): Promise<BenchResult> {
  const t0 = performance.now();
  const p = await prepare();
  const { caPem, certs } = await clientCerts();
  const bundle = join(BENCH_HOME, 'g3-client-cas.pem');
  writeFileSync(bundle, `${readFileSync(p.pki.caFile, 'utf8').trim()}\n${caPem.trim()}\n`);
  const gw = await startGateway(p, {
    name: 'g3',
    extraCertIdentities: certs.map((c) => c.identity),
    clientCaFile: bundle,
  });
  const apiKey = readFileSync(p.apiKeyFile, 'utf8').trim();
  const setup = new MtlsClient(gw.url, stackTls(p), 1);
  const fixture = await unwrapFixture(p, setup, await fetchToken(setup, apiKey));
  await setup.close();
  const ca = readFileSync(p.pki.caFile);
  const tokenBody = new URLSearchParams({
    grant_type: 'urn:ibm:params:oauth:grant-type:apikey',
    apikey: apiKey,
  }).toString();
  console.log(`G3 ${certs.length} distinct clients connecting at once`);
  const firstDone: number[] = [];
  const allDone: number[] = [];
  const failures: string[] = [];
  const clients = certs.map(
    (c) =>
      new Client(gw.url, {
        connect: { ca, cert: c.certPem, key: c.keyPem, timeout: 30_000 },
        keepAliveTimeout: 60_000,
        headersTimeout: 60_000,
        bodyTimeout: 60_000,
      }),
  );
  const start = performance.now();
  await Promise.all(
    clients.map(async (client) => {
      try {
        const tr = await request(`${gw.url}/identity/token`, {
          method: 'POST',
          dispatcher: client,
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: tokenBody,
        });
        const text = await tr.body.text();
        firstDone.push(performance.now() - start);
        if (tr.statusCode !== 200) throw new Error(`token HTTP ${tr.statusCode}`);
        const token = (JSON.parse(text) as { access_token: string }).access_token;
        const ur = await request(`${gw.url}${fixture.path}`, {
          method: 'POST',
          dispatcher: client,
          headers: { ...fixture.headers, authorization: `Bearer ${token}` },
          body: fixture.body,
        });
        await ur.body.text();
        if (ur.statusCode !== 200) throw new Error(`unwrap HTTP ${ur.statusCode}`);
        allDone.push(performance.now() - start);
      } catch (err) {
        failures.push(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
      }
    }),
  );
  const stormMs = performance.now() - start;
  await Promise.all(clients.map((c) => c.close()));
  await gw.proc.stop();
  const sortedFirst = Float64Array.from(firstDone).sort();
  const sortedAll = Float64Array.from(allDone).sort();
  const served = allDone.length;
  console.log(
    `  served ${served}/${certs.length}, refused/failed ${failures.length}${failures[0] ? ` (first: ${failures[0]})` : ''}`,
  );
  console.log(
    `  handshake+token: p50 ${fmt(percentile(sortedFirst, 0.5))} ms, last ${fmt(percentile(sortedFirst, 1))} ms; all unwrapped after ${fmt(stormMs)} ms (p50 ${fmt(percentile(sortedAll, 0.5))} ms)`,
  );
  return {
    id: 'G3',
    title: `${certs.length} distinct clients (certificates and tokens) connecting at once`,
    target: 'all served, none refused; handshake storm time reported',
    value: served / certs.length,
    unit: 'share served',
    met: served === certs.length && failures.length === 0,
    extra: {
      clients: certs.length,
      served,
      failed: failures.length,
      stormMs: Math.round(stormMs),
      handshakeTokenP50Ms: Math.round(percentile(sortedFirst, 0.5)),
      handshakeTokenLastMs: Math.round(percentile(sortedFirst, 1)),
      perClientMs: Math.round((stormMs / certs.length) * 100) / 100,
    },
    seconds: (performance.now() - t0) / 1000,
  };
}

await mainIf(import.meta.url, runG3);
