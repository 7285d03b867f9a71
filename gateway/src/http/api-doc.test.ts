import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { KEY_ACTIONS, LIFECYCLE_ACTIONS } from '@keygate/shared/api';
import { createApp } from './app.js';
import type { AppDeps } from './deps.js';

/** docs/api.md, from gateway/dist/http/ once built. */
const API_DOC = new URL('../../../docs/api.md', import.meta.url);

/** The "`METHOD path`" entries docs/api.md must list for one route of the app. */
function documented(method: string, path: string): string[] {
  const p = path.replace(':id', '{id}').replace(':name', '{name}').replace(':version', '{version}');
  if (p.endsWith('/actions/:action')) {
    return [...KEY_ACTIONS, ...LIFECYCLE_ACTIONS].map((a) => `\`${method} ${p.replace(':action', a)}\``);
  }
  // Key Protect's older form: the action is a query parameter.
  if (method === 'POST' && p === '/api/v2/keys/{id}') return [`\`POST ${p}?action=<action>\``];
  return [`\`${method} ${p}\``];
}

describe('docs/api.md', () => {
  it('lists every route the gateway serves in its Routes table, and none it does not', () => {
    // Token mode registers every route; handlers never run here.
    const app = createApp({ tokens: {}, bodyLimitBytes: 1024 } as unknown as AppDeps);
    const routes = app.routes.filter((r) => r.method !== 'ALL').flatMap((r) => documented(r.method, r.path));
    const doc = readFileSync(API_DOC, 'utf8');
    const table = doc.slice(doc.indexOf('\n## Routes'), doc.indexOf('\n## Tokens'));
    const rows = table.split('\n').filter((l) => l.startsWith('| `'));
    for (const r of routes)
      assert.ok(
        rows.some((l) => l.startsWith(`| ${r} |`)),
        `${r} missing`,
      );
    assert.equal(rows.length, routes.length, 'the Routes table lists a route the app does not serve');
  });
});
