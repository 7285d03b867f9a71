import type { Hono } from 'hono';
import { html } from 'hono/html';
import type { NodeRecord, UsageCount } from '../core/fleet/fleet.js';
import { barChart, lineChart, type Series } from './charts.js';
import type { ConsoleCore } from './console-core.js';
import type { ConsoleCtx, ConsoleEnv } from './console-env.js';
import { badge, type Html, notAvailable, page, when } from './layout.js';

const DEFAULT_STALE_MS = 5 * 60_000;
/** The charts cover the last hour in 5-minute steps. */
const CHART_SPAN_MS = 60 * 60_000;
const STEP_MS = 5 * 60_000;

/** Operations per cluster in STEP_MS buckets over the last CHART_SPAN_MS. */
export function usageSeries(
  usage: readonly UsageCount[],
  now: number,
): { labels: string[]; series: Series[] } {
  const start = Math.floor((now - CHART_SPAN_MS) / STEP_MS) * STEP_MS;
  const n = Math.ceil((now - start) / STEP_MS);
  const labels = Array.from({ length: n }, (_, i) =>
    new Date(start + i * STEP_MS).toISOString().slice(11, 16),
  );
  const byCluster = new Map<string, number[]>();
  for (const u of usage) {
    const i = Math.floor((Date.parse(u.minute) - start) / STEP_MS);
    if (i < 0 || i >= n) continue;
    let values = byCluster.get(u.cluster);
    if (values === undefined) {
      values = new Array<number>(n).fill(0);
      byCluster.set(u.cluster, values);
    }
    values[i] = (values[i] ?? 0) + u.count;
  }
  const series = [...byCluster.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, values]) => ({ name, values }));
  return { labels, series };
}

/** Uses per root key and version over the last hour. */
export function versionBars(usage: readonly UsageCount[]): { label: string; value: number }[] {
  const totals = new Map<string, number>();
  for (const u of usage) {
    const label = `${u.crk.slice(0, 8)}… v ${u.version.slice(0, 8)}`;
    totals.set(label, (totals.get(label) ?? 0) + u.count);
  }
  return [...totals.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([label, value]) => ({ label, value }));
}

function nodeRow(n: NodeRecord, stale: boolean): Html {
  return html`<tr>
<td>${n.node}</td>
<td>${n.health === 'ok' ? badge('ok', 'ok') : badge(n.health, 'bad')} ${stale ? badge('stale', 'warn') : ''}</td>
<td><code>${n.instance}</code> / <code>${n.crk}</code></td>
<td><code>${n.kmsKeyId ?? '—'}</code><br><span class="muted">version <code>${n.keyVersion ?? '—'}</code></span></td>
<td>${n.shimVersion}<br><span class="muted">${n.apis.join(', ')}</span></td>
<td class="num">${n.cacheSize}</td>
<td>${when(n.lastSeen)}<br><span class="muted">via ${n.replica}</span></td>
</tr>`;
}

async function clustersPage(c: ConsoleCtx, core: ConsoleCore): Promise<Html> {
  const session = c.get('session');
  const fleet = core.deps.fleet;
  if (fleet === undefined) {
    return page(
      { title: 'Clusters & nodes', current: '/clusters', session },
      html`<h1>Clusters &amp; nodes</h1>${notAvailable('This gateway keeps no fleet records (the fleet view needs a gateway with shim reports).')}`,
    );
  }
  const now = core.deps.clock.now().getTime();
  const staleMs = core.deps.staleAfterMs ?? DEFAULT_STALE_MS;
  const [nodes, usage] = await Promise.all([
    fleet.nodes(),
    fleet.usage({ since: new Date(now - CHART_SPAN_MS) }),
  ]);
  const clusters = new Map<string, NodeRecord[]>();
  for (const n of nodes) clusters.set(n.cluster, [...(clusters.get(n.cluster) ?? []), n]);
  const names = [...clusters.keys()].sort();
  const { labels, series } = usageSeries(usage, now);
  const bars = versionBars(usage);
  return page(
    { title: 'Clusters & nodes', current: '/clusters', session },
    html`<h1>Clusters &amp; nodes</h1>
<p>${names.length} clusters, ${nodes.length} nodes. A node not heard from for ${Math.round(staleMs / 1000)} s is flagged stale.</p>
${names.map((name) => {
  const list = clusters.get(name) ?? [];
  const stale = list.filter((n) => now - Date.parse(n.lastSeen) > staleMs).length;
  return html`<h2>Cluster <code>${name}</code> ${stale > 0 ? badge(`${stale} stale`, 'warn') : badge('all fresh', 'ok')}</h2>
<table><caption>Control-plane nodes of ${name}</caption>
<thead><tr><th scope="col">Node</th><th scope="col">Health</th><th scope="col">Instance / root key</th><th scope="col">key_id</th><th scope="col">Shim</th><th scope="col" class="num">DEK cache</th><th scope="col">Last seen</th></tr></thead>
<tbody>${list.map((n) => nodeRow(n, now - Date.parse(n.lastSeen) > staleMs))}</tbody></table>`;
})}
${names.length === 0 ? html`<p class="muted">No shim has reported yet.</p>` : ''}
<h2>Operations per cluster, last hour</h2>
${series.length === 0 ? html`<p class="muted">No wrap or unwrap in the last hour.</p>` : lineChart('ops', 'Wraps and unwraps per cluster, per 5 minutes', labels, series)}
<h2>Key-version use, last hour</h2>
${bars.length === 0 ? html`<p class="muted">No key use in the last hour.</p>` : barChart('versions', 'Operations per root key version', bars)}`,
  );
}

/** GET /clusters. */
export function registerFleetPages(app: Hono<ConsoleEnv>, core: ConsoleCore): void {
  app.get('/clusters', async (c) => c.html(await clustersPage(c, core)));
}
