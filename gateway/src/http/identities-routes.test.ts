import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { systemClock } from '@keygate/shared';
import { createLogger } from '@keygate/shared/log';
import { gatewayConfigSchema } from '../config.js';
import { createApp } from './app.js';
import type { AppDeps } from './deps.js';

describe('identity routes without run-time identities', () => {
  it('answer 409 IDENTITIES_READ_ONLY on every route, before any authentication', async () => {
    const app = createApp({
      logger: createLogger({ level: 'silent', name: 'test' }),
      clock: systemClock,
      bodyLimitBytes: 8192,
    } as unknown as AppDeps);
    const routes: [string, string][] = [
      ['GET', '/api/v2/keygate/identities'],
      ['POST', '/api/v2/keygate/identities'],
      ['GET', '/api/v2/keygate/identities/svc'],
      ['PUT', '/api/v2/keygate/identities/svc'],
      ['DELETE', '/api/v2/keygate/identities/svc'],
      ['POST', '/api/v2/keygate/identities/svc/apikeys'],
      ['DELETE', '/api/v2/keygate/apikeys/ak-1'],
    ];
    for (const [method, path] of routes) {
      const r = await app.request(path, { method });
      assert.equal(r.status, 409, `${method} ${path}`);
      const body = (await r.json()) as { resources: { reasons: { code: string }[] }[] };
      assert.equal(body.resources[0]?.reasons[0]?.code, 'IDENTITIES_READ_ONLY');
    }
  });
});

describe('config: token mode without identities:', () => {
  const base = {
    server: { tls: { certFile: 'c', keyFile: 'k', clientCaFile: 'ca' } },
    hsm: { backend: 'software', keyFile: 'k', masterKeyFile: 'm' },
    tokens: { signingKeyFiles: ['t.pem'] },
  };
  it('is valid with store.postgres (identities in the database) and not with the file store', () => {
    const pg = { postgres: { host: 'db', database: 'keygate', user: 'keygate' } };
    assert.equal(gatewayConfigSchema.safeParse({ ...base, store: pg }).success, true);
    assert.equal(gatewayConfigSchema.safeParse({ ...base, store: { file: 'keys.json' } }).success, false);
    const both = gatewayConfigSchema.safeParse({
      ...base,
      store: pg,
      access: { clients: [{ identity: 'x', instances: ['*'] }] },
    });
    assert.equal(both.success, false, 'tokens and the allow-list together');
  });
});
