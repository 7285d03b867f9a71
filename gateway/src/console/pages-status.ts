import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { ConsoleCore } from './console-core.js';
import type { ConsoleEnv } from './console-env.js';
import { badge, type Html, page } from './layout.js';

function readyCard(title: string, ready: boolean, lines: readonly string[], extra: Html | string = ''): Html {
  return html`<section class="card" aria-labelledby="${title}-h"><h2 id="${title}-h">${title}</h2>
<p>${ready ? badge('ready', 'ok') : badge('not ready', 'bad')}</p>
${lines.length === 0 ? '' : html`<ul>${lines.map((l) => html`<li>${l}</li>`)}</ul>`}${extra}</section>`;
}

/** GET /status: HSM and database readiness, replicas, versions. */
export function registerStatusPage(app: Hono<ConsoleEnv>, core: ConsoleCore): void {
  app.get('/status', async (c) => {
    const r = core.deps.readiness();
    const info = core.deps.info;
    const replicas = (await info.replicas?.().catch(() => undefined)) ?? [info.replica];
    return c.html(
      page(
        { title: 'Status', current: '/status', session: c.get('session') },
        html`<h1>Status</h1>
<div class="cards">
${readyCard('HSM', r.hsm.ready, r.hsm.reasons, html`<p class="muted">backend ${r.hsm.backend}${r.hsm.sessions === undefined ? '' : `, ${r.hsm.sessions.open} sessions open, ${r.hsm.sessions.busy} busy`}</p>`)}
${readyCard('Key store and database', r.store.ready, r.store.reasons, html`<p class="muted">${info.store}</p>`)}
<section class="card" aria-labelledby="gw-h"><h2 id="gw-h">Gateway</h2>
<table><caption>This gateway</caption><tbody>
<tr><th scope="row">keygate version</th><td>${info.version}</td></tr>
<tr><th scope="row">Node.js</th><td>${process.version}</td></tr>
<tr><th scope="row">This replica</th><td>${info.replica}</td></tr>
<tr><th scope="row">Replicas seen</th><td>${replicas.join(', ')}</td></tr>
<tr><th scope="row">Audit</th><td>${info.audit}</td></tr>
<tr><th scope="row">Console sessions</th><td>${core.sessions.size}</td></tr>
</tbody></table></section>
</div>`,
      ),
    );
  });
}
