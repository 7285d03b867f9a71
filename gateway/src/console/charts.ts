import { html } from 'hono/html';
import type { Html } from './layout.js';

/** One line of a time chart. */
export interface Series {
  readonly name: string;
  readonly values: readonly number[];
}

const W = 640;
const H = 200;
const PAD = { left: 48, right: 12, top: 12, bottom: 28 };
/** Colour classes of console.css (.s0 … .s5), reused in turn. */
const COLOURS = 6;

/** A round upper bound for the y axis. */
function niceMax(v: number): number {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * A line chart, server-side SVG (no script): `series` over `labels` (one x position each). The
 * SVG is an image with a title and description for screen readers; the legend names the colours.
 */
export function lineChart(
  id: string,
  title: string,
  labels: readonly string[],
  series: readonly Series[],
): Html {
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)));
  const iw = W - PAD.left - PAD.right;
  const ih = H - PAD.top - PAD.bottom;
  const x = (i: number) => PAD.left + (labels.length <= 1 ? iw / 2 : (i * iw) / (labels.length - 1));
  const y = (v: number) => PAD.top + ih - (v / max) * ih;
  const ticks = [0, max / 2, max];
  const every = Math.max(1, Math.ceil(labels.length / 6));
  const total = series.reduce((n, s) => n + s.values.reduce((a, b) => a + b, 0), 0);
  return html`<figure>
<svg class="chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-labelledby="${id}-t ${id}-d">
<title id="${id}-t">${title}</title>
<desc id="${id}-d">${series.length} series over ${labels.length} intervals, ${total} operations in all.</desc>
${ticks.map(
  (t) =>
    html`<line x1="${PAD.left}" x2="${W - PAD.right}" y1="${y(t)}" y2="${y(t)}" stroke="#d0d7de"/><text x="${PAD.left - 6}" y="${y(t) + 4}" text-anchor="end">${Math.round(t)}</text>`,
)}
${labels.map((l, i) =>
  i % every === 0 ? html`<text x="${x(i)}" y="${H - 8}" text-anchor="middle">${l}</text>` : '',
)}
${series.map((s, k) => {
  const pts = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  return html`<polyline class="l${k % COLOURS}" points="${pts}" stroke-width="2"/>${s.values.map(
    (v, i) => html`<circle class="s${k % COLOURS}" cx="${x(i).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5"/>`,
  )}`;
})}
</svg>
<figcaption><ul class="legend">${series.map(
    (s, k) => html`<li><span class="swatch s${k % COLOURS}"></span>${s.name}</li>`,
  )}</ul></figcaption>
</figure>`;
}

/** A horizontal bar chart, server-side SVG: one bar per label. */
export function barChart(id: string, title: string, bars: readonly { label: string; value: number }[]): Html {
  const rowH = 22;
  const h = PAD.top + bars.length * rowH + 8;
  const labelW = 170;
  const iw = W - labelW - 60;
  const max = niceMax(Math.max(0, ...bars.map((b) => b.value)));
  return html`<figure>
<svg class="chart" viewBox="0 0 ${W} ${h}" width="${W}" height="${h}" role="img" aria-labelledby="${id}-t ${id}-d">
<title id="${id}-t">${title}</title>
<desc id="${id}-d">${bars.map((b) => `${b.label}: ${b.value}`).join('; ')}</desc>
${bars.map((b, i) => {
  const top = PAD.top + i * rowH;
  const w = Math.max(b.value > 0 ? 2 : 0, (b.value / max) * iw);
  return html`<text x="${labelW - 8}" y="${top + 15}" text-anchor="end">${b.label}</text><rect class="s${i % COLOURS}" x="${labelW}" y="${top + 3}" width="${w.toFixed(1)}" height="${rowH - 8}"/><text x="${labelW + w + 6}" y="${top + 15}">${b.value}</text>`;
})}
</svg>
</figure>`;
}
