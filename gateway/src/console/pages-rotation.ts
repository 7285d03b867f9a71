import { isInstanceId, isKeyId, KeyState } from '@keygate/shared/api';
import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { ClusterRotation, RotationStatus } from '../core/fleet/rotation-view.js';
import { type ConsoleCore, readableInstances } from './console-core.js';
import type { ConsoleCtx, ConsoleEnv } from './console-env.js';
import { badge, type Html, notAvailable, page, when } from './layout.js';

/** The rotation page reloads itself this often (the only page that does). */
export const ROTATION_REFRESH_SECONDS = 5;

function clusterTable(r: ClusterRotation): Html {
  return html`<h3>Cluster <code>${r.cluster}</code> ${r.converged ? badge('converged', 'ok') : badge('not converged', 'warn')}
${r.newVersionSeen ? badge('new version in use', 'ok') : badge('new version not used yet', 'muted')}</h3>
<table><caption>Nodes of ${r.cluster}</caption>
<thead><tr><th scope="col">Node</th><th scope="col">key_id</th><th scope="col">Version</th><th scope="col">State</th><th scope="col">Last seen</th></tr></thead>
<tbody>${r.nodes.map(
    (
      n,
    ) => html`<tr><td>${n.node}</td><td><code>${n.kmsKeyId ?? '—'}</code></td><td><code>${n.keyVersion ?? '—'}</code></td>
<td>${n.stale ? badge('stale', 'warn') : n.converged ? badge('on new version', 'ok') : badge('old version', 'bad')}</td><td>${when(n.lastSeen)}</td></tr>`,
  )}</tbody></table>
${
  r.oldVersionUse.length === 0
    ? html`<p class="ok">No use of older versions since the rotation.</p>`
    : html`<table><caption>Older versions still used by ${r.cluster} since the rotation</caption>
<thead><tr><th scope="col">Version</th><th scope="col" class="num">Wraps</th><th scope="col" class="num">Unwraps</th><th scope="col" class="num">Rewraps</th><th scope="col">Last used</th></tr></thead>
<tbody>${r.oldVersionUse.map(
        (u) =>
          html`<tr><td><code>${u.version}</code></td><td class="num">${u.wraps}</td><td class="num">${u.unwraps}</td><td class="num">${u.rewraps}</td><td>${when(u.lastUsed)}</td></tr>`,
      )}</tbody></table>`
}`;
}

function statusSection(s: RotationStatus): Html {
  return html`<section aria-labelledby="rot-h">
<h2 id="rot-h">Rotation from <code>${s.rotation.fromVersion}</code> to <code>${s.rotation.toVersion}</code></h2>
<p>Started ${when(s.rotation.startedAt)} by <strong>${s.rotation.startedBy}</strong>; current version <code>${s.currentVersion}</code>.</p>
<p>${s.safeToDisable ? badge('old versions safe to disable', 'ok') : badge('not yet safe to disable old versions', 'warn')}
${s.quietSince === undefined ? '' : html` Old versions unused since ${when(s.quietSince)}.`}</p>
${s.reasons.length === 0 ? '' : html`<ul>${s.reasons.map((r) => html`<li>${r}</li>`)}</ul>`}
${s.clusters.length === 0 ? html`<p class="muted">No cluster uses this key.</p>` : s.clusters.map(clusterTable)}
</section>`;
}

async function rotationPage(c: ConsoleCtx, core: ConsoleCore): Promise<Html> {
  const session = c.get('session');
  const identity = c.get('identity');
  const instances = readableInstances(identity);
  const keys = (await Promise.all(instances.map((i) => core.deps.keys.list(i)))).flat();
  // `k=<instance>/<key id>` (neither id can hold a slash).
  const [qi, qk] = (c.req.query('k') ?? '').split('/');
  const chosen =
    isInstanceId(qi) && isKeyId(qk) && instances.includes(qi)
      ? keys.find((k) => k.instance === qi && k.id === qk)
      : keys.find((k) => k.state === KeyState.ACTIVE);
  let body: Html;
  if (chosen === undefined) {
    body = html`<p class="muted">Choose a key.</p>`;
  } else if (core.deps.rotation !== undefined) {
    const status = await core.deps.rotation.status(chosen.instance, chosen.id);
    body =
      status === undefined
        ? html`<p>Key <strong>${chosen.name}</strong> was never rotated.</p>`
        : statusSection(status);
  } else {
    const records = (await core.deps.fleet?.rotations(chosen.instance, chosen.id)) ?? [];
    body = html`${notAvailable('Rotation status (per-cluster convergence, old-version use, safe to disable) needs a gateway with guided rotation.')}
${
  records.length === 0
    ? ''
    : html`<table><caption>Rotations of ${chosen.name}</caption><thead><tr><th scope="col">From</th><th scope="col">To</th><th scope="col">Started</th><th scope="col">By</th></tr></thead>
<tbody>${records.map((r) => html`<tr><td><code>${r.fromVersion}</code></td><td><code>${r.toVersion}</code></td><td>${when(r.startedAt)}</td><td>${r.startedBy}</td></tr>`)}</tbody></table>`
}`;
  }
  return page(
    { title: 'Rotation', current: '/rotation', session, refreshSeconds: ROTATION_REFRESH_SECONDS },
    html`<h1>Rotation progress</h1>
<form method="get" action="/rotation"><div class="field"><label for="rot-key">Root key</label>
<select id="rot-key" name="k">${keys.map(
      (k) =>
        html`<option value="${k.instance}/${k.id}"${chosen === k ? html` selected` : ''}>${k.name} (${k.instance})</option>`,
    )}</select></div>
<button type="submit">Show</button></form>
<p class="muted">This page reloads every ${ROTATION_REFRESH_SECONDS} seconds.</p>
${chosen === undefined ? '' : html`<h2>${chosen.name} <span class="muted">(<code>${chosen.instance}</code> / <code>${chosen.id}</code>)</span></h2>`}
${body}`,
  );
}

/** GET /rotation. */
export function registerRotationPages(app: Hono<ConsoleEnv>, core: ConsoleCore): void {
  app.get('/rotation', async (c) => c.html(await rotationPage(c, core)));
}
