import assert from 'node:assert/strict';
import { seededRandom } from '@keygate/shared/crypto';
import { KeygateError } from '@keygate/shared/errors';
import { createLogger } from '@keygate/shared/log';
import { MemoryFleetStore } from '../adapters/fleet/memory-fleet-store.js';
import { createConsoleApp } from '../console/console-app.js';
import type { ConsoleDeps } from '../console/ports.js';
import type { AuditEvent, AuditSink } from '../core/audit/audit-event.js';
import { hashApiKey } from '../core/auth/api-key.js';
import { IdentityDirectory } from '../core/auth/identity-directory.js';
import { createKeyService } from '../core/keys/key-service.js';
import { FakeHsm } from './fake-hsm.js';
import { MemoryKeyStore } from './memory-key-store.js';

/** The console app on fakes, for unit tests (the browser suite runs it on the real stack). */
export const ADMIN_KEY = 'kg_console-admin-key-for-tests';
export const READER_KEY = 'kg_console-reader-key-for-tests';
export const CLUSTER_KEY = 'kg_console-cluster-key-for-tests';

/** `more` replaces or adds ports (rotation, versions, auditReader …). */
export function setupConsole(opts: { idleMs?: number; more?: Partial<ConsoleDeps> } = {}) {
  const random = seededRandom('console');
  let now = Date.parse('2026-03-01T10:00:00Z');
  const clock = { now: () => new Date(now) };
  const keys = createKeyService({ hsm: new FakeHsm(random), store: new MemoryKeyStore(), clock, random });
  const events: AuditEvent[] = [];
  const auditState = { down: false };
  const audit: AuditSink = {
    assertAvailable: () => {
      if (auditState.down) throw new KeygateError('AUDIT_UNAVAILABLE');
    },
    append: async (e) => {
      events.push(e);
    },
    close: async () => undefined,
  };
  const identities = new IdentityDirectory([
    {
      name: 'ops',
      apiKeyHashes: [hashApiKey(ADMIN_KEY)],
      certIdentities: ['spiffe://test/ops'],
      roles: { '*': ['fleet:read'], 'inst-a': ['keys:admin', 'keys:read'] },
    },
    {
      name: 'viewer',
      apiKeyHashes: [hashApiKey(READER_KEY)],
      certIdentities: ['spiffe://test/viewer'],
      roles: { '*': ['fleet:read'], 'inst-a': ['keys:read'] },
    },
    {
      name: 'cluster-1',
      apiKeyHashes: [hashApiKey(CLUSTER_KEY)],
      certIdentities: ['spiffe://test/c1'],
      roles: { 'inst-a': ['wrap', 'unwrap'] },
    },
  ]);
  const fleet = new MemoryFleetStore({ now: () => new Date(now) });
  const { app } = createConsoleApp({
    keys,
    identities,
    audit,
    fleet,
    readiness: () => ({
      hsm: { backend: 'software', ready: true, reasons: [] },
      store: { ready: true, reasons: [] },
    }),
    info: { version: '0.1.0', replica: 'r1', store: 'memory', audit: 'memory' },
    limits: {
      idleTimeoutMs: opts.idleMs ?? 60_000,
      sessionTtlMs: 3_600_000,
      maxFailedLogins: 3,
      loginLockoutMs: 60_000,
    },
    allowedHosts: new Set(['localhost']),
    clock,
    logger: createLogger({ level: 'silent', name: 'test' }),
    ...opts.more,
  });
  const advance = (ms: number) => {
    now += ms;
  };
  return { app, keys, events, fleet, advance, auditState };
}

export type ConsoleTestApp = ReturnType<typeof setupConsole>['app'];

/** Logs in with `apikey`; the session cookie and the CSRF token of its forms. */
export async function login(app: ConsoleTestApp, apikey: string): Promise<{ cookie: string; csrf: string }> {
  const res = await app.request('/login', { method: 'POST', body: new URLSearchParams({ apikey }) });
  assert.equal(res.status, 303);
  const set = res.headers.get('set-cookie') ?? '';
  assert.match(set, /^__Host-keygate-session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; Secure; SameSite=Strict$/);
  const cookie = set.split(';')[0] ?? '';
  const page = await (await app.request('/keys', { headers: { cookie } })).text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)?.[1];
  assert.ok(csrf, 'the keys page carries a CSRF field');
  return { cookie, csrf };
}

/** A form POST with the session cookie. */
export function post(
  app: ConsoleTestApp,
  path: string,
  cookie: string,
  fields: Record<string, string>,
  headers: Record<string, string> = {},
) {
  return app.request(path, {
    method: 'POST',
    body: new URLSearchParams(fields),
    headers: { cookie, ...headers },
  });
}
