/** A tiny dependency-free SVG line chart (log2 x axis for concurrency). */

export interface Series {
  readonly name: string;
  readonly color: string;
  readonly dashed?: boolean;
  readonly points: ReadonlyArray<readonly [number, number]>;
}

export interface ChartSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
}

const W = 420;
const H = 260;
const M = { l: 58, r: 12, t: 28, b: 44 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** One chart as an SVG <g> at (x, y). */
export function chart(spec: ChartSpec, x0: number, y0: number): string {
  const xs = [...new Set(spec.series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const lx = xs.map((x) => Math.log2(x));
  const minX = Math.min(...lx);
  const maxX = Math.max(...lx);
  const maxY = niceMax(Math.max(...spec.series.flatMap((s) => s.points.map((p) => p[1]))));
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const sx = (x: number) => M.l + ((Math.log2(x) - minX) / (maxX - minX || 1)) * pw;
  const sy = (y: number) => M.t + ph - (y / maxY) * ph;
  const out: string[] = [`<g transform="translate(${x0},${y0})">`];
  out.push(`<text x="${W / 2}" y="16" text-anchor="middle" font-weight="bold">${esc(spec.title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const v = (maxY * i) / 4;
    const y = sy(v);
    out.push(`<line x1="${M.l}" y1="${y}" x2="${W - M.r}" y2="${y}" stroke="#ddd"/>`);
    out.push(`<text x="${M.l - 6}" y="${y + 4}" text-anchor="end">${Number(v.toPrecision(3))}</text>`);
  }
  for (const x of xs) {
    out.push(`<line x1="${sx(x)}" y1="${M.t + ph}" x2="${sx(x)}" y2="${M.t + ph + 4}" stroke="#333"/>`);
    out.push(`<text x="${sx(x)}" y="${M.t + ph + 16}" text-anchor="middle">${x}</text>`);
  }
  out.push(`<rect x="${M.l}" y="${M.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${M.l + pw / 2}" y="${H - 8}" text-anchor="middle">${esc(spec.xLabel)}</text>`);
  out.push(
    `<text transform="translate(14,${M.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(spec.yLabel)}</text>`,
  );
  spec.series.forEach((s, i) => {
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    const d = pts
      .map((p, j) => `${j === 0 ? 'M' : 'L'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`)
      .join(' ');
    out.push(
      `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,4"' : ''}/>`,
    );
    for (const p of pts) out.push(`<circle cx="${sx(p[0])}" cy="${sy(p[1])}" r="3" fill="${s.color}"/>`);
    const ly = M.t + 12 + i * 14;
    out.push(
      `<line x1="${M.l + 8}" y1="${ly - 4}" x2="${M.l + 26}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,4"' : ''}/>`,
    );
    out.push(`<text x="${M.l + 30}" y="${ly}">${esc(s.name)}</text>`);
  });
  out.push('</g>');
  return out.join('\n');
}

/** Charts in a grid of `columns`, as one SVG document. */
export function svgDocument(charts: readonly ChartSpec[], columns: number, caption: string): string {
  const rows = Math.ceil(charts.length / columns);
  const width = columns * W;
  const height = rows * H + 24;
  const body = charts.map((c, i) => chart(c, (i % columns) * W, Math.floor(i / columns) * H)).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11" role="img">
<title>${esc(charts.map((c) => c.title).join('; '))}</title>
<rect width="100%" height="100%" fill="white"/>
${body}
<text x="8" y="${height - 8}" fill="#555">${esc(caption)}</text>
</svg>
`;
}
